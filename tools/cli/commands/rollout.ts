/**
 * `holdfast rollout`: staged rollouts on the fleet inventory
 * (docs/spec/rollout.md): start one from a plan and a signed manifest, step
 * it with what devices proved to the ingest, show it, halt it, and print or
 * verify its trail. The state lives beside the inventory
 * (`<inventory>.rollouts/<id>/`, tools/rollout/store.ts), or with `--db
 * postgres://…` in the inventory's database (tools/rollout/store-postgres.ts),
 * and changes only under the inventory's lock, so a killed command changes
 * nothing.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { DB_HELP, onStore } from './fleet.ts';
import { hostCrypto } from '../../keys/signer.ts';
import { tryDecode } from '../../keys/image.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { MAX_ENVELOPE_LENGTH } from '../../../firmware/update/signed-document.ts';
import { readInput } from '../files.ts';
import { CliError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { parsePlan, ROLLOUT_PLAN_MAX_BYTES, RolloutPlanError } from '../../rollout/plan.ts';
import { Rollout, type Decision } from '../../rollout/engine.ts';
import { fleetMembers, type LoadedRollout } from '../../rollout/store.ts';
import { auditKeys, signalsFrom } from '../../rollout/signals.ts';
import { readAccepted } from '../../rollout/ingest-reader.ts';
import { rolloutBreakdown, type OutcomeRow } from '../../rollout/status.ts';

const INVENTORY_HELP = 'fleet inventory; the rollouts are kept beside it in <inventory>.rollouts/';
const DEFAULT_INVENTORY = 'fleet.json';
const ROLLOUT_DB_HELP = `${DB_HELP}; the rollouts are kept in the same database`;
const AT_HELP = "time on the rollout's clock, whole seconds since the epoch (default: now)";

function parseId(value: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(value)) throw new InvalidArgumentError('expected a rollout id: 1..64 of a-z 0-9 . _ -');
  return value;
}

function parseReason(value: string): string {
  if (!/^[\x20-\x7e]{1,200}$/.test(value)) throw new InvalidArgumentError('expected 1..200 printable ASCII characters');
  return value;
}

const parseAt = parseInteger(0, 2 ** 40);

function nowOf(at: number | undefined): number {
  return at ?? Math.floor(Date.now() / 1000);
}

/** A decision as one line: `#seq at kind stage devices key=value…`. */
function decisionLine(d: Decision, plan: LoadedRollout['plan']): string {
  const signals = Object.entries(d.signals).map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`).join(' ');
  return `#${d.seq} at ${d.at} ${d.kind} stage ${plan.stages[d.stage]?.name ?? d.stage}${d.devices.length > 0 ? ` devices ${d.devices.length}` : ''}${signals ? ` ${signals}` : ''}`;
}

/** A command's result: its JSON object under --json, else a headline and one line per decision. */
function printResult(json: boolean | undefined, object: Record<string, unknown>, headline: string, decisions: readonly Decision[], plan: LoadedRollout['plan']): void {
  if (json === true) console.log(JSON.stringify({ ok: true, ...object, decisions }, null, 2));
  else {
    console.log(headline);
    for (const d of decisions) console.log(decisionLine(d, plan));
  }
  process.exitCode = ExitCode.OK;
}

function progress(json: boolean | undefined, text: string): void {
  if (json !== true && process.stderr.isTTY === true) process.stderr.write(`${text}\n`);
}

function table(title: string, rows: Readonly<Record<string, OutcomeRow>>): string[] {
  const keys = Object.keys(rows).sort();
  if (keys.length === 0) return [];
  return [`${title}:`, ...keys.map((k) => `  ${k.padEnd(20)} offered ${rows[k]!.offered}  pending ${rows[k]!.pending}  committed ${rows[k]!.committed}  failed ${rows[k]!.failed}`)];
}

export function registerRollout(program: Command): void {
  const rollout = program.command('rollout').description('staged rollouts of a signed update over the fleet inventory, decided by what devices prove (docs/spec/rollout.md)');

  rollout
    .command('start')
    .description('start a rollout: check the plan against the signed manifest, keep both beside the inventory, offer the first stage')
    .requiredOption('--plan <file>', 'rollout plan (JSON, docs/spec/rollout.md "Plan")')
    .requiredOption('--manifest <file>', "the image's signed manifest (holdfast sign); its versions must be the plan's target")
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', ROLLOUT_DB_HELP)
    .option('--at <seconds>', AT_HELP, parseAt)
    .option('--json', 'print {ok, id, dir, status, stage, offered, decisions}')
    .action(async (flags: { plan: string; manifest: string; inventory: string; db?: string; at?: number; json?: boolean }, command: Command) => {
      const planBytes = readInput(flags.plan, 'a rollout plan (JSON)', ROLLOUT_PLAN_MAX_BYTES);
      let plan;
      try {
        plan = parsePlan(planBytes);
      } catch (error) {
        if (error instanceof RolloutPlanError) throw new CliError(error.message, { file: flags.plan, code: 'invalid-file' });
        throw error;
      }
      const manifest = readInput(flags.manifest, 'a signed manifest (holdfast sign)', MAX_ENVELOPE_LENGTH);
      const decoded = tryDecode(manifest);
      if (decoded === undefined) throw new CliError('not a signed image manifest: expected the manifest holdfast sign wrote', { file: flags.manifest, code: 'invalid-file' });
      if (decoded.imageVersion !== plan.target.imageVersion || decoded.securityVersion !== plan.target.securityVersion) {
        throw new CliError(`the manifest is image ${decoded.imageVersion} security ${decoded.securityVersion}, the plan's target image ${plan.target.imageVersion} security ${plan.target.securityVersion}: expected the manifest of the plan's image`, { file: flags.plan, field: 'target', code: 'invalid-file' });
      }
      const now = nowOf(flags.at);
      const result = await onStore(flags, command, (store) => store.withLock(async (lock) => {
        const fleet = await lock.load(false);
        const started = Rollout.start(plan, fleetMembers(fleet), now);
        const dir = await store.rollouts.create({ planBytes, plan, manifest, rollout: started.rollout, decisions: started.decisions, now });
        return { dir, ...started };
      }));
      const offered = result.rollout.offered().length;
      printResult(flags.json, { id: plan.id, dir: result.dir, status: result.rollout.status, stage: result.rollout.stage, offered }, `rollout ${plan.id} started at ${now}: stage ${plan.stages[0]!.name}, ${offered} device(s) offered image ${plan.target.imageVersion} (${result.dir})`, result.decisions, plan);
    });

  rollout
    .command('step')
    .description("read what the offered devices proved to the ingest since the last step, then decide (offer, end a stage, halt, complete)")
    .requiredOption('--id <id>', 'rollout id (the plan\'s id)', parseId)
    .requiredOption('--ingest-db <dir-or-url>', "the ingest's --db: a PGlite folder (read while no ingest holds it) or a postgres:// server (read beside the running ingest)")
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', ROLLOUT_DB_HELP)
    .option('--at <seconds>', AT_HELP, parseAt)
    .option('--json', 'print {ok, id, at, status, stage, records, signals, badTags, undecodable, decisions, counts}')
    .action(async (flags: { id: string; ingestDb: string; inventory: string; db?: string; at?: number; json?: boolean }, command: Command) => onStore(flags, command, async (store) => {
      const now = nowOf(flags.at);
      const before = await store.rollouts.load(flags.id);
      if (now < before.state.clock) throw new CliError(`--at ${now} is before the rollout's clock ${before.state.clock}: expected time to go forward`, { field: '--at', code: 'failed' });
      progress(flags.json, `reading the records of ${before.rollout.offered().length} device(s) from the ingest…`);
      const records = await readAccepted(flags.ingestDb, before.rollout.offered(), before.state.cursor, now * 1000);
      progress(flags.json, `${records.length} record(s) read; deciding…`);
      const result = await store.withLock(async (lock) => {
        const fleet = await lock.load(false);
        const loaded = await store.rollouts.load(flags.id);
        if (now < loaded.state.clock) throw new CliError(`--at ${now} is before the rollout's clock ${loaded.state.clock}: expected time to go forward`, { field: '--at', code: 'failed' });
        // Another step may have committed meanwhile: only what is past the cursor now.
        const fresh = records.filter((r) => r.counter > (loaded.state.cursor[r.device] ?? 0));
        const secrets = new Map(fleet.devices.map((d) => [d.deviceId, d.secret]));
        const batch = signalsFrom(hostCrypto(), fresh, auditKeys(hostCrypto(), (d) => secrets.get(d)));
        for (const s of batch.signals) loaded.rollout.observe(s);
        const decisions = loaded.rollout.step(fleetMembers(fleet), now);
        const cursor = { ...loaded.state.cursor };
        for (const [d, h] of batch.highest) cursor[d] = Math.max(cursor[d] ?? 0, h);
        await store.rollouts.commit(loaded, { clock: now, cursor, badTags: loaded.state.badTags + batch.counts.badTags }, decisions);
        return { loaded, batch, decisions, records: fresh.length };
      });
      const { loaded, batch, decisions } = result;
      const c = loaded.rollout.counts();
      const headline = `rollout ${flags.id} at ${now}: ${loaded.rollout.status}, stage ${loaded.plan.stages[loaded.rollout.stage]!.name}; ${result.records} record(s), ${batch.signals.length} signal(s)${batch.counts.badTags > 0 ? `, ${batch.counts.badTags} audit entr${batch.counts.badTags === 1 ? 'y' : 'ies'} with a bad tag (not signals)` : ''}; offered ${c.offered}, committed ${c.committed}, failed ${c.failed}, pending ${c.pending}`;
      printResult(flags.json, { id: flags.id, at: now, status: loaded.rollout.status, stage: loaded.rollout.stage, records: result.records, signals: batch.signals.length, badTags: batch.counts.badTags, undecodable: batch.counts.undecodable, counts: c }, headline, decisions, loaded.plan);
    }));

  rollout
    .command('status')
    .description('a rollout: status, stage, devices by outcome and cause, by cohort and by gateway')
    .requiredOption('--id <id>', "rollout id (the plan's id)", parseId)
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', ROLLOUT_DB_HELP)
    .option('--json', 'print {ok, id, status, stage, stageName, stages, clock, target, counts, byCohort, byGateway, badTags, trail}')
    .action(async (flags: { id: string; inventory: string; db?: string; json?: boolean }, command: Command) => {
      const { loaded, fleet } = await onStore(flags, command, async (store) => ({ loaded: await store.rollouts.load(flags.id), fleet: await store.read() }));
      const where = new Map(fleet.devices.map((d) => [d.deviceId, { cohort: d.cohort ?? '', gateway: d.gateway ?? '' }]));
      const breakdown = rolloutBreakdown(loaded.rollout, (d) => where.get(d) ?? { cohort: '', gateway: '' });
      const stage = loaded.rollout.stage;
      const status = {
        id: loaded.plan.id,
        status: loaded.rollout.status,
        stage,
        stageName: loaded.plan.stages[stage]!.name,
        stages: loaded.plan.stages.length,
        clock: loaded.state.clock,
        target: loaded.plan.target,
        ...breakdown,
        badTags: loaded.state.badTags,
        trail: { entries: loaded.trail.length, uncommitted: loaded.uncommitted },
      };
      if (flags.json) console.log(JSON.stringify({ ok: true, ...status }, null, 2));
      else {
        const c = loaded.rollout.counts();
        const lines = [
          `rollout ${flags.id}: ${loaded.rollout.status}, stage ${loaded.rollout.stage + 1}/${loaded.plan.stages.length} (${loaded.plan.stages[loaded.rollout.stage]!.name}), clock ${loaded.state.clock}`,
          `offered ${c.offered}  pending ${c.pending}  committed ${c.committed}  failed ${c.failed}`,
          ...Object.keys(c.causes).sort().map((k) => `  failed ${k}: ${c.causes[k]}`),
          ...table('by cohort', status.byCohort),
          ...table('by gateway', status.byGateway),
          `trail: ${loaded.trail.length} decisions${loaded.uncommitted > 0 ? ` (+${loaded.uncommitted} uncommitted line(s) of an interrupted step, dropped at the next step)` : ''}; audit entries with a bad tag: ${loaded.state.badTags}`,
        ];
        console.log(lines.join('\n'));
      }
      process.exitCode = ExitCode.OK;
    });

  rollout
    .command('halt')
    .description('halt a running rollout by hand: nobody else is offered the image (with onHalt roll-back, the devices that committed are named); recorded in the trail')
    .requiredOption('--id <id>', "rollout id (the plan's id)", parseId)
    .requiredOption('--reason <text>', 'why, recorded in the trail (1..200 printable characters)', parseReason)
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', ROLLOUT_DB_HELP)
    .option('--at <seconds>', AT_HELP, parseAt)
    .option('--json', 'print {ok, id, status, decisions}')
    .action(async (flags: { id: string; reason: string; inventory: string; db?: string; at?: number; json?: boolean }, command: Command) => {
      const now = nowOf(flags.at);
      const { loaded, decisions } = await onStore(flags, command, (store) => store.withLock(async () => {
        const loaded = await store.rollouts.load(flags.id);
        if (loaded.rollout.status !== 'running') throw new CliError(`rollout ${flags.id} is ${loaded.rollout.status}: expected a running rollout`, { code: 'failed' });
        const at = Math.max(now, loaded.state.clock);
        const decisions = loaded.rollout.halt(at, flags.reason);
        await store.rollouts.commit(loaded, { clock: at, cursor: loaded.state.cursor, badTags: loaded.state.badTags }, decisions);
        return { loaded, decisions };
      }));
      printResult(flags.json, { id: flags.id, status: loaded.rollout.status }, `rollout ${flags.id} halted: ${flags.reason}`, decisions, loaded.plan);
    });

  rollout
    .command('trail')
    .description("print a rollout's decisions with the signals each rests on; --verify checks the hash chain and its head against the state")
    .requiredOption('--id <id>', "rollout id (the plan's id)", parseId)
    .option('--verify', 'only check the trail (chain, numbering, head hash) and print the result')
    .option('--inventory <file>', INVENTORY_HELP, DEFAULT_INVENTORY)
    .option('--db <url>', ROLLOUT_DB_HELP)
    .option('--json', 'print {ok, id, verified, entries, uncommitted, lastHash, decisions}')
    .action(async (flags: { id: string; verify?: boolean; inventory: string; db?: string; json?: boolean }, command: Command) => {
      // Loading refuses a trail that does not chain or does not end at the state's head.
      const loaded = await onStore(flags, command, (store) => store.rollouts.load(flags.id));
      const lastHash = loaded.trail.at(-1)?.hash ?? null;
      if (flags.json) console.log(JSON.stringify({ ok: true, id: flags.id, verified: true, entries: loaded.trail.length, uncommitted: loaded.uncommitted, lastHash, ...(flags.verify ? {} : { decisions: loaded.trail }) }, null, 2));
      else {
        if (!flags.verify) for (const d of loaded.trail) console.log(`${decisionLine(d, loaded.plan)}${d.devices.length > 0 && d.devices.length <= 8 ? ` [${d.devices.join(' ')}]` : ''}`);
        console.log(`trail of ${flags.id}: ${loaded.trail.length} decisions, chain verified, head ${lastHash ?? '(none)'}${loaded.uncommitted > 0 ? `; ${loaded.uncommitted} uncommitted line(s) of an interrupted step (ignored)` : ''}`);
      }
      process.exitCode = ExitCode.OK;
    });
}
