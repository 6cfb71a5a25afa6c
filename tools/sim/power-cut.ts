/**
 * The power-cut runner (docs/design/power-cut-runner.md).
 *
 * A scenario is written the littlefs way: one reentrant `boot` that recovers
 * from flash, checks its invariants against what the test knows happened,
 * then carries on. The runner counts the flash operations of a clean run,
 * then reruns the scenario cut at every operation index with several torn
 * variants each, rebooting (fresh firmware instances, same flash) until the
 * work completes, and checks the invariants after every recovery.
 *
 * Engine-neutral: the same runner drives the same scenario in Node and in XS.
 * A failure names the scenario, the cut list and seeds, and the saved flash
 * image, so `replayCuts` reproduces it exactly.
 */
import { isPowerCut } from './flash/errors.ts';
import { deriveSeed, Rng } from './rng.ts';
import type { CutPlan, FlashCounters, SimFlashOptions, SimFlashSnapshot } from './flash/sim-flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';

/** What the runner needs from a flash: the HAL plus cut control. */
export interface CuttableFlash extends FlashPartition {
  armCut(plan: CutPlan): void;
  disarmCut(): void;
  powerOn(): void;
  readonly counters: FlashCounters;
  snapshot(): SimFlashSnapshot;
}

export type FlashFactory = (options: SimFlashOptions) => CuttableFlash;

export interface CutScenario<State> {
  readonly name: string;
  readonly flash: SimFlashOptions;
  /** What the test knows happened; it survives reboots, the device's RAM does not. */
  createState(): State;
  /**
   * One boot: build fresh firmware instances over `flash`, recover, check the
   * invariants against `state`, then continue the work and return when it is
   * all done. A PowerCut thrown by the flash ends the boot early.
   */
  boot(flash: FlashPartition, state: State, bootIndex: number): void;
}

export interface RunnerOptions {
  createFlash: FlashFactory;
  /** Torn variants per cut point (different seeds for the torn bytes). */
  variants?: number;
  seed?: number;
  /** Upper bound on boots in one run: a scenario that never finishes fails. */
  maxBoots?: number;
  /** Writes the flash image of a failing run; returns where it went. */
  saveFailureImage?: (name: string, snapshot: SimFlashSnapshot) => string | undefined;
  /** Only cut operations in [from, to): a slice of an exhaustive run. */
  cutRange?: { from: number; to: number };
}

export interface CutReport {
  scenario: string;
  /** Flash operations (writes + erases) of the clean run. */
  operations: number;
  /** Distinct operation indexes cut. */
  cutPoints: number;
  /** Runs executed (cut points × variants, or random runs). */
  runs: number;
  /** Cuts that actually struck. */
  cuts: number;
  /** Boots in all, first boots and reboots. */
  boots: number;
}

export class PowerCutFailure extends Error {
  constructor(
    readonly scenario: string,
    readonly cutPlans: readonly CutPlan[],
    readonly bootIndex: number,
    readonly imagePath: string | undefined,
    readonly failure: unknown,
  ) {
    super(
      `[${scenario}] failed at boot ${bootIndex} after cuts ${describeCuts(cutPlans)}: ${errorText(failure)}` +
        (imagePath ? `\n  flash image: ${imagePath}` : '') +
        `\n  replay: replayCuts(<${scenario}>, ${JSON.stringify(cutPlans)})`,
    );
    this.name = 'PowerCutFailure';
  }
}

const DEFAULT_VARIANTS = 3;
const DEFAULT_SEED = 0x401df457;
const DEFAULT_MAX_BOOTS = 64;

/** Run once without cuts; returns the flash operation count. */
export function countOperations<S>(scenario: CutScenario<S>, options: RunnerOptions): number {
  const flash = options.createFlash(scenario.flash);
  // Only the scenario's own operations count: a factory's preparation of the flash is not cut.
  const before = flash.counters.operations;
  const boots = bootUntilDone(scenario, flash, scenario.createState(), [], options);
  if (boots.cuts !== 0) throw new Error(`[${scenario.name}] clean run was cut`);
  return flash.counters.operations - before;
}

/**
 * Cut at every operation index of the clean run (or `cutRange`), each with
 * `variants` torn results; check invariants after every recovery.
 */
export function runExhaustive<S>(scenario: CutScenario<S>, options: RunnerOptions): CutReport {
  const operations = countOperations(scenario, options);
  const variants = options.variants ?? DEFAULT_VARIANTS;
  const seed = options.seed ?? DEFAULT_SEED;
  const from = options.cutRange?.from ?? 0;
  const to = Math.min(options.cutRange?.to ?? operations, operations);
  const report: CutReport = { scenario: scenario.name, operations, cutPoints: Math.max(0, to - from), runs: 0, cuts: 0, boots: 0 };
  for (let at = from; at < to; at++) {
    for (let variant = 0; variant < variants; variant++) {
      const plans = [{ atOperation: at, seed: deriveSeed(seed, at, variant) }];
      const outcome = replayCuts(scenario, plans, options);
      report.runs++;
      report.cuts += outcome.cuts;
      report.boots += outcome.boots;
    }
  }
  return report;
}

/**
 * Random multi-cut runs: each run strikes up to `maxCuts` times at random
 * operation offsets (each counted from the previous reboot).
 */
export function runRandom<S>(
  scenario: CutScenario<S>,
  options: RunnerOptions & { runs: number; maxCuts: number },
): CutReport {
  const operations = countOperations(scenario, options);
  const rng = new Rng(options.seed ?? DEFAULT_SEED);
  const report: CutReport = { scenario: scenario.name, operations, cutPoints: 0, runs: 0, cuts: 0, boots: 0 };
  for (let run = 0; run < options.runs; run++) {
    const count = 1 + rng.below(options.maxCuts);
    const plans: CutPlan[] = [];
    for (let i = 0; i < count; i++) plans.push({ atOperation: rng.below(Math.max(1, Math.ceil(operations / count))), seed: rng.nextU32() });
    const outcome = replayCuts(scenario, plans, options);
    report.runs++;
    report.cuts += outcome.cuts;
    report.cutPoints += outcome.cuts;
    report.boots += outcome.boots;
  }
  return report;
}

/** Run the scenario with exactly these cuts (one after each reboot): the replay primitive. */
export function replayCuts<S>(
  scenario: CutScenario<S>,
  plans: readonly CutPlan[],
  options: RunnerOptions,
): { cuts: number; boots: number } {
  const flash = options.createFlash(scenario.flash);
  return bootUntilDone(scenario, flash, scenario.createState(), plans, options);
}

function bootUntilDone<S>(
  scenario: CutScenario<S>,
  flash: CuttableFlash,
  state: S,
  plans: readonly CutPlan[],
  options: RunnerOptions,
): { cuts: number; boots: number } {
  const maxBoots = options.maxBoots ?? DEFAULT_MAX_BOOTS;
  let cuts = 0;
  for (let boot = 0; boot < maxBoots; boot++) {
    const plan = plans[cuts];
    if (plan) flash.armCut(plan);
    else flash.disarmCut();
    try {
      scenario.boot(flash, state, boot);
      flash.disarmCut();
      return { cuts, boots: boot + 1 };
    } catch (error) {
      if (!isPowerCut(error)) fail(scenario, flash, plans.slice(0, cuts), boot, error, options);
      cuts++;
      flash.powerOn();
    }
  }
  return fail(scenario, flash, plans, maxBoots, new Error(`did not finish within ${maxBoots} boots`), options);
}

function fail<S>(
  scenario: CutScenario<S>,
  flash: CuttableFlash,
  plans: readonly CutPlan[],
  boot: number,
  error: unknown,
  options: RunnerOptions,
): never {
  if (error instanceof PowerCutFailure) throw error;
  flash.disarmCut();
  flash.powerOn();
  const path = options.saveFailureImage?.(`${scenario.name}-${describeCuts(plans).replace(/[^\w.-]+/g, '_')}`, flash.snapshot());
  throw new PowerCutFailure(scenario.name, plans, boot, path, error);
}

function describeCuts(plans: readonly CutPlan[]): string {
  if (plans.length === 0) return '(none)';
  return plans.map((p) => `op ${p.atOperation} seed 0x${(p.seed >>> 0).toString(16)}`).join(', then ');
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
