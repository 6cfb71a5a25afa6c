/**
 * The emulated device that the by-name modules (named/) stand for: a test
 * installs one before it calls code that imports Moddable's module names
 * (firmware/targets/moddable/device.ts). Test-side state, not firmware.
 */
import type { EmuModdable } from './index.ts';

const slot: { current: EmuModdable | undefined } = { current: undefined };

export function installEmuModdable(emu: EmuModdable | undefined): void {
  slot.current = emu;
}

export function installed(): EmuModdable {
  if (slot.current === undefined) throw new Error('no emulated Moddable device installed (installEmuModdable)');
  return slot.current;
}
