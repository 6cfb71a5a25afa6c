/**
 * The security floor in flash (docs/spec/floor-store.md): the lowest
 * security version the device accepts. On an ESP32 with anti-rollback the
 * secure-version eFuse is the hardware floor; this store keeps the same
 * floor in flash so a build without the eFuse still refuses downgrades, and
 * `readFloor` takes the higher of the two.
 *
 * The floor is key 0 of a two-block log (base/two-block-log.ts): mirrored
 * records, a rotation that never erases the only copy, and a typed refusal
 * (StorageError) wherever damage could make the floor read lower: a floor
 * that cannot be proven is never read as 0.
 */
import type { FlashPartition } from '../hal/flash.ts';
import { TwoBlockLog, type TwoBlockLogReport, type TwoBlockLogSpec } from '../base/two-block-log.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';

/** Record tag of a floor ('F'). */
export const FLOOR_KIND = 0x46;
export const FLOOR_LOG: TwoBlockLogSpec = Object.freeze({ name: 'security floor', version: FORMAT_VERSIONS.floorStore, kind: FLOOR_KIND, keys: 1 });
/** The largest floor: a u32 secure version. */
const MAX_FLOOR = 0xffffffff;

export class FloorStore {
  private readonly log: TwoBlockLog;

  /** Provisioning: an empty log, floor 0. Only with a fresh device, never to get past a refusal. */
  static format(flash: FlashPartition): void {
    TwoBlockLog.format(flash, FLOOR_LOG);
  }

  /**
   * Recover the floor (writes nothing). Throws StorageError 'blank',
   * 'not-formatted', 'format-too-new', 'damaged' or 'bad-geometry'
   * (docs/spec/two-block-log.md): fail closed, the agent refuses to act.
   */
  constructor(flash: FlashPartition) {
    this.log = TwoBlockLog.open(flash, FLOOR_LOG);
  }

  get secureVersion(): number {
    return this.log.value(0);
  }

  /** Raise the floor to `version` (never lowers it); returns once durable. */
  raise(version: number): void {
    if (!Number.isInteger(version) || version < 0 || version > MAX_FLOOR) throw new RangeError(`bad security version ${version}`);
    // Even when the floor is already there: a floor a cut left in one copy is written again.
    this.log.settle();
    if (version <= this.log.value(0)) return;
    this.log.write(0, version);
  }

  /** What recovery found and survived. */
  report(): TwoBlockLogReport {
    return this.log.report();
  }
}

/** A floor the agent can raise: the secure-version eFuse where there is one. */
export interface HardwareFloor {
  readonly secureVersion: number;
  raise(version: number): void;
}

/**
 * The floor in force is the higher of the flash store and the eFuse; a
 * raise goes to flash first, then to the eFuse (both only after VALID).
 */
export function combinedFloor(store: FloorStore, efuse: HardwareFloor | undefined): HardwareFloor {
  return {
    get secureVersion() {
      return Math.max(efuse?.secureVersion ?? 0, store.secureVersion);
    },
    raise(version: number) {
      store.raise(version);
      efuse?.raise(version);
    },
  };
}
