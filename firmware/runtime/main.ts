/**
 * The firmware's entry: a function, so loading the module has no effect and
 * every boot builds fresh instances (Moddable preload; a reboot is a fresh
 * instance). The runtime issue wires storage, protocol and update here; for
 * now it reports the boot.
 */
import type { Log } from '../hal/log.ts';
import type { ResetReason, System } from '../hal/system.ts';

export const RUNTIME_NAME = 'holdfast';

export interface RuntimeHal {
  readonly system: System;
  readonly log: Log;
}

export interface Runtime {
  readonly resetReason: ResetReason;
}

export function startRuntime(hal: RuntimeHal): Runtime {
  const resetReason = hal.system.lastResetReason();
  hal.log.write('info', 'runtime', 'boot', { resetReason });
  return Object.freeze({ resetReason });
}
