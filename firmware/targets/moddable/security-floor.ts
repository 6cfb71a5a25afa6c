/**
 * The update agent's `SecurityFloor` (firmware/update/agent.ts) over the
 * anti-rollback eFuse, through the glue: `esp_efuse_read_secure_version()`
 * and `esp_efuse_update_secure_version(n)`. Built without anti-rollback
 * (`holdfast build` without `--secure-version`) the glue reports -1: the
 * eFuse part of the floor is then 0 and `raise` writes nothing, and the
 * floor lives in the flash copy alone (docs/spec/floor-store.md). `raise`
 * never lowers (eFuse bits only set) and burns only above the current value.
 */
import type { SecurityFloor } from '../../update/agent.ts';
import type { HoldfastNative } from './modules.ts';

export interface ModdableSecurityFloor extends SecurityFloor {
  /** Anti-rollback is built into this image (the eFuse floor is in use). */
  readonly antiRollback: boolean;
}

export function createModdableSecurityFloor(native: HoldfastNative): ModdableSecurityFloor {
  const antiRollback = native.secureVersion() >= 0;
  return Object.freeze<ModdableSecurityFloor>({
    antiRollback,
    get secureVersion(): number {
      return antiRollback ? native.secureVersion() : 0;
    },
    raise(version: number): void {
      if (!Number.isInteger(version) || version < 0) throw new RangeError(`secure version ${String(version)}: expected a non-negative integer`);
      if (!antiRollback) return;
      if (version > native.secureVersion()) native.raiseSecureVersion(version);
    },
  });
}
