/**
 * Firmware test cases that run unchanged in Node and in the real XS engine
 * (test/support/engines.ts registers each case once per engine).
 */
import type { FlashFactory } from '../../tools/sim/power-cut.ts';
import type { SimFlashSnapshot } from '../../tools/sim/flash/sim-flash.ts';

export type Engine = 'node' | 'xs';

export interface CaseEnv {
  readonly engine: Engine;
  /** Simulated flash: in Node a SimFlash, in XS a proxy to one on the Node side. */
  readonly createFlash: FlashFactory;
  /** Writes a failing run's flash image where the developer can find it. */
  readonly saveFailureImage: (name: string, snapshot: SimFlashSnapshot) => string | undefined;
}

/** Figures a case reports (cut points covered, flash counts): printed per engine. */
export type CaseReport = Readonly<Record<string, number | string | boolean>>;

export interface FirmwareCase {
  readonly name: string;
  run(env: CaseEnv): CaseReport | void;
}

export interface CaseSuite {
  readonly name: string;
  readonly cases: readonly FirmwareCase[];
}
