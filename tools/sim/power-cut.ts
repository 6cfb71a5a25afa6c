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
 * Each cut point is torn in both tear modes ('prefix' and 'bit-subset',
 * docs/spec/sim-flash.md), and on request each run is cut a second time
 * during the recovery boot that follows the first cut (double faults).
 *
 * Engine-neutral: the same runner drives the same scenario in Node and in XS.
 * A failure names the scenario, the cut list with seeds and tear modes, and
 * the saved flash image, so `replayCuts` reproduces it exactly.
 */
import { isPowerCut } from './flash/errors.ts';
import { deriveSeed, Rng } from './rng.ts';
import type { CutPlan, FlashCounters, SimFlashOptions, SimFlashSnapshot, TearMode } from './flash/sim-flash.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { setErrorName } from '../../firmware/base/error-name.ts';

export type { CutPlan, TearMode } from './flash/sim-flash.ts';

/** Every tear mode, in the order variants cycle through them. */
export const TEAR_MODES: readonly TearMode[] = Object.freeze(['prefix', 'bit-subset'] as const);

/**
 * Second cuts during the recovery boot (the boot right after the first
 * cut), for `runExhaustive`:
 * - 'none': single cuts only;
 * - 'every': at every operation of the recovery boot, in every tear mode;
 * - { sample: n }: n seeded (operation, tear mode) pairs of that boot per
 *   first cut, half of them among its first 8 operations (where recovery's
 *   own writes are); 'every' when n covers them all.
 */
export type SecondCuts = 'none' | 'every' | { readonly sample: number };

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
  /**
   * Tear modes to cut with (default both). Exhaustive runs give each cut
   * point max(variants, tears.length) runs, variant v tearing in mode
   * tears[v % tears.length]; random runs alternate modes cut by cut.
   */
  tears?: readonly TearMode[];
  /**
   * Double faults in `runExhaustive` (see SecondCuts). Default 'none'. In
   * the exhaustive tier (see `effectiveSecondCuts`) an unset value becomes
   * { sample: 4 } and a sample becomes 'every'; an explicit 'none' stays.
   */
  secondCuts?: SecondCuts;
  /**
   * The exhaustive tier (slow, for nightly runs): widens second cuts as
   * `effectiveSecondCuts` says. Default: the HOLDFAST_EXHAUSTIVE flag (see
   * `exhaustiveTier`).
   */
  exhaustive?: boolean;
}

export interface CutReport {
  scenario: string;
  /** Flash operations (writes + erases) of the clean run. */
  operations: number;
  /** Distinct operation indexes cut. */
  cutPoints: number;
  /** Runs executed: cut points × max(variants, tear modes) plus the double-cut runs, or the random runs. */
  runs: number;
  /** Cuts that actually struck. */
  cuts: number;
  /** Boots in all, first boots and reboots. */
  boots: number;
  /** Runs whose first cut tore in 'prefix' mode. */
  prefixRuns: number;
  /** Runs whose first cut tore in 'bit-subset' mode (prefixRuns + bitSubsetRuns = runs). */
  bitSubsetRuns: number;
  /** Runs (among `runs`) cut a second time during the recovery boot. */
  doubleCutRuns: number;
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
    setErrorName(this, 'PowerCutFailure');
  }
}

const DEFAULT_VARIANTS = 3;
const DEFAULT_SEED = 0x401df457;
const DEFAULT_MAX_BOOTS = 64;
/** Second cuts per first cut in the exhaustive tier for a suite that did not set `secondCuts`. */
const EXHAUSTIVE_TIER_SAMPLE = 4;
/** Sampled second cuts favour the start of the recovery boot, where recovery itself writes. */
const RECOVERY_HEAD_OPERATIONS = 8;

/**
 * The exhaustive tier is on when HOLDFAST_EXHAUSTIVE is set to something
 * other than '' or '0': in Node's environment, or (in XS, which has no
 * environment) as a global the case server copies from the host's request.
 * Feature-detected, so this stays engine-neutral.
 */
export function exhaustiveTier(): boolean {
  const global = globalThis as { HOLDFAST_EXHAUSTIVE?: unknown; process?: { env?: Record<string, string | undefined> } };
  const flag = global.HOLDFAST_EXHAUSTIVE ?? global.process?.env?.HOLDFAST_EXHAUSTIVE;
  return flag !== undefined && flag !== '' && flag !== '0' && flag !== false;
}

/**
 * What `runExhaustive` does for second cuts under these options and tier.
 * In the exhaustive tier a suite that said nothing gets a sample, and a
 * sample widens to every operation; an explicit 'none' stays 'none' (for a
 * suite that asserts single-cut properties: one cut per run, the exact cut
 * that catches a planted bug).
 */
export function effectiveSecondCuts(options: Pick<RunnerOptions, 'secondCuts' | 'exhaustive'>): SecondCuts {
  const asked = options.secondCuts;
  if (!(options.exhaustive ?? exhaustiveTier())) return asked ?? 'none';
  if (asked === undefined) return { sample: EXHAUSTIVE_TIER_SAMPLE };
  if (asked === 'none') return 'none';
  return 'every';
}

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
 * max(`variants`, tears) torn results cycling through the tear modes, and
 * with second cuts in the recovery boot as `secondCuts` asks; check
 * invariants after every recovery.
 */
export function runExhaustive<S>(scenario: CutScenario<S>, options: RunnerOptions): CutReport {
  const operations = countOperations(scenario, options);
  const tears = tearModes(options);
  const variants = Math.max(options.variants ?? DEFAULT_VARIANTS, tears.length);
  const seed = options.seed ?? DEFAULT_SEED;
  const second = effectiveSecondCuts(options);
  const from = options.cutRange?.from ?? 0;
  const to = Math.min(options.cutRange?.to ?? operations, operations);
  const report = emptyReport(scenario.name, operations);
  report.cutPoints = Math.max(0, to - from);
  for (let at = from; at < to; at++) {
    for (let variant = 0; variant < variants; variant++) {
      const first: CutPlan = { atOperation: at, seed: deriveSeed(seed, at, variant), tear: tears[variant % tears.length] };
      const outcome = runPlans(scenario, [first], options);
      count(report, first, outcome);
      // The boot after the cut ran clean: its operations are where a second fault can strike.
      if (second === 'none' || outcome.cuts !== 1) continue;
      const recoveryOperations = outcome.bootOperations[1] ?? 0;
      for (const point of secondCutPoints(second, recoveryOperations, tears, deriveSeed(seed, at, variant, 0x5ec0d))) {
        const plans: CutPlan[] = [first, { atOperation: point.at, seed: deriveSeed(seed, at, variant, 1 + point.at, 1 + point.tear), tear: tears[point.tear] }];
        const double = runPlans(scenario, plans, options);
        count(report, first, double);
        report.doubleCutRuns++;
      }
    }
  }
  return report;
}

/**
 * Random multi-cut runs: each run strikes up to `maxCuts` times at random
 * operation offsets (each counted from the previous reboot); the tear modes
 * alternate cut by cut and run by run (so the random draws, and the cut
 * points of a seed, are what they were before tear modes existed).
 */
export function runRandom<S>(
  scenario: CutScenario<S>,
  options: RunnerOptions & { runs: number; maxCuts: number },
): CutReport {
  const operations = countOperations(scenario, options);
  const tears = tearModes(options);
  const rng = new Rng(options.seed ?? DEFAULT_SEED);
  const report = emptyReport(scenario.name, operations);
  for (let run = 0; run < options.runs; run++) {
    const cutsInRun = 1 + rng.below(options.maxCuts);
    const plans: CutPlan[] = [];
    for (let i = 0; i < cutsInRun; i++) {
      plans.push({ atOperation: rng.below(Math.max(1, Math.ceil(operations / cutsInRun))), seed: rng.nextU32(), tear: tears[(run + i) % tears.length] });
    }
    const outcome = runPlans(scenario, plans, options);
    count(report, plans[0], outcome);
    report.cutPoints += outcome.cuts;
  }
  return report;
}

/** Run the scenario with exactly these cuts (one after each reboot): the replay primitive. */
export function replayCuts<S>(
  scenario: CutScenario<S>,
  plans: readonly CutPlan[],
  options: RunnerOptions,
): { cuts: number; boots: number } {
  const { cuts, boots } = runPlans(scenario, plans, options);
  return { cuts, boots };
}

interface RunOutcome {
  cuts: number;
  boots: number;
  /** Flash operations each boot issued (a cut boot counts the torn one). */
  bootOperations: number[];
}

function runPlans<S>(scenario: CutScenario<S>, plans: readonly CutPlan[], options: RunnerOptions): RunOutcome {
  const flash = options.createFlash(scenario.flash);
  return bootUntilDone(scenario, flash, scenario.createState(), plans, options);
}

function bootUntilDone<S>(
  scenario: CutScenario<S>,
  flash: CuttableFlash,
  state: S,
  plans: readonly CutPlan[],
  options: RunnerOptions,
): RunOutcome {
  const maxBoots = options.maxBoots ?? DEFAULT_MAX_BOOTS;
  const bootOperations: number[] = [];
  let cuts = 0;
  let operations = flash.counters.operations;
  for (let boot = 0; boot < maxBoots; boot++) {
    const plan = plans[cuts];
    if (plan) flash.armCut(plan);
    else flash.disarmCut();
    try {
      scenario.boot(flash, state, boot);
      flash.disarmCut();
      bootOperations.push(flash.counters.operations - operations);
      return { cuts, boots: boot + 1, bootOperations };
    } catch (error) {
      if (!isPowerCut(error)) fail(scenario, flash, plans.slice(0, cuts), boot, error, options);
      cuts++;
      flash.powerOn();
      const now = flash.counters.operations;
      bootOperations.push(now - operations);
      operations = now;
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
  // Each cut is counted from the reboot before it: the second is an operation of the recovery boot.
  return plans
    .map((p, i) => `${i === 0 ? '' : `(reboot ${i}) `}op ${p.atOperation} seed 0x${(p.seed >>> 0).toString(16)}${p.tear ? ` ${p.tear}` : ''}`)
    .join(', then ');
}

function tearModes(options: RunnerOptions): readonly TearMode[] {
  const tears = options.tears ?? TEAR_MODES;
  if (tears.length === 0) throw new RangeError('tears must name at least one tear mode');
  return tears;
}

function emptyReport(scenario: string, operations: number): CutReport {
  return { scenario, operations, cutPoints: 0, runs: 0, cuts: 0, boots: 0, prefixRuns: 0, bitSubsetRuns: 0, doubleCutRuns: 0 };
}

function count(report: CutReport, first: CutPlan, outcome: RunOutcome): void {
  report.runs++;
  report.cuts += outcome.cuts;
  report.boots += outcome.boots;
  if ((first.tear ?? 'prefix') === 'prefix') report.prefixRuns++;
  else report.bitSubsetRuns++;
}

/** (operation, tear index) pairs of the recovery boot to cut, in a seeded order. */
function secondCutPoints(second: SecondCuts, operations: number, tears: readonly TearMode[], seed: number): { at: number; tear: number }[] {
  if (second === 'none') return [];
  if (second !== 'every' && (!Number.isInteger(second.sample) || second.sample < 0)) {
    throw new RangeError(`secondCuts.sample must be a non-negative integer, got ${second.sample}`);
  }
  const all: { at: number; tear: number }[] = [];
  for (let at = 0; at < operations; at++) for (let tear = 0; tear < tears.length; tear++) all.push({ at, tear });
  if (second === 'every' || second.sample >= all.length) return all;
  const rng = new Rng(seed);
  const head = Math.min(operations, RECOVERY_HEAD_OPERATIONS) * tears.length;
  const picked = new Set<number>();
  while (picked.size < second.sample) {
    const fromHead = picked.size % 2 === 0 && countBelow(picked, head) < head;
    picked.add(fromHead ? rng.below(head) : rng.below(all.length));
  }
  return [...picked].sort((a, b) => a - b).map((i) => all[i]);
}

function countBelow(set: ReadonlySet<number>, bound: number): number {
  let n = 0;
  for (const v of set) if (v < bound) n++;
  return n;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
