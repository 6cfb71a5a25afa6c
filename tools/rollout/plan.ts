/**
 * A staged rollout's plan (docs/spec/rollout.md, "Plan"): which image,
 * which devices, the stages in order, when to halt. Read bounded, checked
 * with a zod schema; an error names the field. Format-versioned: a newer
 * format is refused, never read as this one.
 *
 * Host tool (Node).
 */
import { z } from 'zod';

/** Format of the plan file. */
export const ROLLOUT_PLAN_FORMAT = 1;
/** Largest plan file read. */
export const ROLLOUT_PLAN_MAX_BYTES = 64 * 1024;
/** Most stages in a plan. */
export const ROLLOUT_MAX_STAGES = 16;

const U32 = 'expected an integer 0..4294967295';
const u32 = () => z.number(U32).int(U32).min(0, U32).max(0xffff_ffff, U32);
const name = (what: string) => z.string(`expected ${what}`).regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, `expected ${what}: 1..64 of a-z 0-9 . _ -, starting with a letter or digit`);
const seconds = (max: number) => z.number('expected seconds').int('expected whole seconds').min(0, 'expected seconds ≥ 0').max(max, `expected at most ${max} seconds`);

const stageSchema = z.strictObject({
  name: name('a stage name'),
  /** Share of the eligible devices offered once this stage is reached (cumulative), in percent, 0.01 steps. */
  percent: z.number('expected a percentage').gt(0, 'expected a percentage above 0').max(100, 'expected a percentage ≤ 100').refine((p) => Number.isInteger(Math.round(p * 100)) && Math.abs(p * 100 - Math.round(p * 100)) < 1e-9, 'expected a percentage in steps of 0.01'),
  /** Outcomes (commits or failures) of this stage's devices needed before it can end; fewer devices than this: all of them. */
  minReports: z.number('expected a count').int('expected a whole count').min(1, 'expected at least 1').max(1_000_000, 'expected at most 1000000'),
  /** Time after the reports arrived during which the stage's devices must keep running before the next stage. */
  soakSeconds: seconds(30 * 86_400),
});

export const planSchema = z.strictObject({
  format: z.literal(ROLLOUT_PLAN_FORMAT, `expected ${ROLLOUT_PLAN_FORMAT} (a newer plan format needs a newer holdfast)`),
  id: name('a rollout id'),
  target: z.strictObject({
    /** The image's version (esp_app_desc_t, as the manifest says); devices already at or above it are not offered it. */
    imageVersion: u32(),
    securityVersion: u32(),
  }),
  /** Only devices in these cohorts / behind these gateways (absent: all). */
  select: z
    .strictObject({
      cohorts: z.array(name('a cohort name')).min(1, 'expected at least one cohort').max(256).optional(),
      gateways: z.array(name('a gateway name')).min(1, 'expected at least one gateway').max(256).optional(),
    })
    .optional(),
  stages: z.array(stageSchema, 'expected an array of stages').min(1, 'expected at least one stage').max(ROLLOUT_MAX_STAGES, `expected at most ${ROLLOUT_MAX_STAGES} stages`),
  halt: z.strictObject({
    /** Halt when failures reach this share of the devices with an outcome... */
    failureRatePercent: z.number('expected a percentage').min(0, 'expected a percentage ≥ 0').max(100, 'expected a percentage ≤ 100'),
    /** ...once at least this many devices have one. */
    minExecuted: z.number('expected a count').int('expected a whole count').min(1, 'expected at least 1').max(1_000_000),
  }),
  timeouts: z.strictObject({
    /** Offered and seen, but no commit after this long: failure `timeout`. */
    inProgressSeconds: seconds(30 * 86_400).refine((s) => s > 0, 'expected seconds > 0'),
    /** No verified record from a device for this long after its offer or its commit: failure `silent`. */
    silentSeconds: seconds(30 * 86_400).refine((s) => s > 0, 'expected seconds > 0'),
  }),
  /** On a halt: `stop` offers nobody else; `roll-back` also tells the devices that committed the image to go back. */
  onHalt: z.enum(['stop', 'roll-back'], 'expected stop or roll-back'),
});

export type RolloutPlan = z.infer<typeof planSchema>;
export type RolloutStage = RolloutPlan['stages'][number];

export class RolloutPlanError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(field === '' ? message : `${field}: ${message}`);
    this.name = 'RolloutPlanError';
  }
}

/** Parse a plan from its file's bytes; a RolloutPlanError names the first problem. */
export function parsePlan(bytes: Uint8Array): RolloutPlan {
  if (bytes.length > ROLLOUT_PLAN_MAX_BYTES) throw new RolloutPlanError('', `plan is ${bytes.length} bytes, more than ${ROLLOUT_PLAN_MAX_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new RolloutPlanError('', `not a JSON plan (${error instanceof Error ? error.message : String(error)})`);
  }
  return checkPlan(json);
}

/** Check a plan already parsed from JSON (also the rules zod cannot say field by field). */
export function checkPlan(json: unknown): RolloutPlan {
  const result = planSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new RolloutPlanError(issue.path.join('.'), issue.message);
  }
  const plan = result.data;
  const names = new Set<string>();
  plan.stages.forEach((stage, i) => {
    if (names.has(stage.name)) throw new RolloutPlanError(`stages.${i}.name`, `"${stage.name}" is used twice`);
    names.add(stage.name);
    const before = i === 0 ? 0 : plan.stages[i - 1]!.percent;
    if (stage.percent <= before) throw new RolloutPlanError(`stages.${i}.percent`, `${stage.percent} is not above the stage before (${before}): stages are cumulative`);
  });
  return plan;
}
