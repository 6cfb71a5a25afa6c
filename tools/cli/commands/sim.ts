/**
 * `holdfast sim` (what `npm start` runs): a fleet of devices running the
 * firmware's telemetry path in XS (or Node) over simulated flash, through
 * power cuts, lost links, broker restarts and a hostile gateway, to a
 * broker with the ingest behind it; then a summary, and optionally a report
 * page and every device's flash image (docs/cli.md, docs/design/fleet-sim.md).
 *
 * Exit 0 when every invariant holds (lost, counterRegressions,
 * replaysAccepted, forgeriesAccepted, bricked, auditBreaks all 0), exit 4
 * when one is broken.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parseInteger } from '../../keys/cli-options.ts';
import { EnvironmentError, fromNodeError, UsageError } from '../errors.ts';
import { writeFilesAtomically } from '../files.ts';
import { ExitCode } from '../exit-codes.ts';
import { DEFAULT_SCENARIO, LIMITS, parseBrokerUrl, parseRevoke, type BrokerChoice, type Engine, type RevokePlan, type Scenario } from '../../sim/fleet/scenario.ts';

interface SimFlags {
  devices: number;
  engine: Engine;
  duration: number;
  seed: number;
  powerCuts: number;
  linkFlaps: number;
  brokerRestarts: number;
  replays: number;
  broker?: string;
  report?: string;
  keepFlash?: string;
  json?: boolean;
  clockSkew: number;
  update?: string | boolean;
  manifest?: string;
  trust: string;
  badUpdate?: string | boolean;
  consolePty?: string;
  rollout?: string;
  revoke?: RevokePlan;
}

/** A decimal rate in [min, max]. */
function parseRate(min: number, max: number): (value: string) => number {
  const expected = `expected a number ${min}..${max}`;
  return (value: string) => {
    if (!/^\d{1,9}(\.\d{1,9})?$/.test(value)) throw new InvalidArgumentError(expected);
    const n = Number(value);
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(expected);
    return n;
  };
}

function parseBadUpdate(value: string): 'hang' | 'fail-checks' {
  if (value !== 'hang' && value !== 'fail-checks') throw new InvalidArgumentError('expected hang or fail-checks');
  return value;
}

function parseRevokeFlag(value: string): RevokePlan {
  const plan = parseRevoke(value);
  if (plan === undefined) throw new InvalidArgumentError('expected device@<second>, device:<index>@<second> or command-key@<second>');
  return plan;
}

function parseEngine(value: string): Engine {
  if (value !== 'xs' && value !== 'node') throw new InvalidArgumentError('expected xs or node');
  return value;
}

export function registerSim(program: Command): void {
  const d = DEFAULT_SCENARIO;
  program
    .command('sim')
    .description('simulate a fleet: devices running the firmware over simulated flash, power cuts, lost links, broker restarts, a hostile gateway, the ingest; exit 4 if a promise is broken')
    .option('--devices <n>', `devices in the fleet, ${LIMITS.devices.min}..${LIMITS.devices.max}`, parseInteger(LIMITS.devices.min, LIMITS.devices.max), d.devices)
    .option('--engine <engine>', 'where the device firmware runs: xs (the XS engine) or node', parseEngine, d.engine)
    .option('--duration <seconds>', `simulated seconds, ${LIMITS.durationSec.min}..${LIMITS.durationSec.max}`, parseInteger(LIMITS.durationSec.min, LIMITS.durationSec.max), d.durationSec)
    .option('--seed <n>', 'seed of the fault schedule and the devices, 0..2^32-1', parseInteger(0, 0xffffffff), d.seed)
    .option('--power-cuts <rate>', `power cuts per device per simulated hour, ${LIMITS.ratePerHour.min}..${LIMITS.ratePerHour.max}`, parseRate(LIMITS.ratePerHour.min, LIMITS.ratePerHour.max), d.powerCutsPerHour)
    .option('--link-flaps <rate>', `link losses per device per simulated hour, ${LIMITS.ratePerHour.min}..${LIMITS.ratePerHour.max}`, parseRate(LIMITS.ratePerHour.min, LIMITS.ratePerHour.max), d.linkFlapsPerHour)
    .option('--broker-restarts <rate>', `broker restarts per simulated hour, ${LIMITS.ratePerHour.min}..${LIMITS.ratePerHour.max} (0 with --broker)`, parseRate(LIMITS.ratePerHour.min, LIMITS.ratePerHour.max), d.brokerRestartsPerHour)
    .option('--replays <rate>', `chance per PUBLISH that the gateway replays, duplicates, reorders, forges or flips it, ${LIMITS.replays.min}..${LIMITS.replays.max}`, parseRate(LIMITS.replays.min, LIMITS.replays.max), d.replays)
    .option('--clock-skew <rate>', `signed-time jumps (1..3 simulated minutes) per device per simulated hour, audited as clock jumps, never a reason to refuse, ${LIMITS.ratePerHour.min}..${LIMITS.ratePerHour.max}`, parseRate(LIMITS.ratePerHour.min, LIMITS.ratePerHour.max), d.clockSkewPerHour)
    .option('--update <image>', 'offer this signed ESP-IDF app image to every device (with --manifest; default: the sim signs its own good update)')
    .option('--manifest <file>', 'the manifest holdfast sign wrote for --update')
    .option('--trust <dir>', 'key directory whose newest root signed --manifest (provisioned into every device)', 'keys')
    .option('--bad-update [kind]', 'also offer a bad image that must roll back by itself: hang (stops feeding the watchdog, the default) or fail-checks (fails its self-test); only with the sim\'s own update', parseBadUpdate)
    .option('--no-update', 'offer no update (telemetry, power cuts and faults only)')
    .option('--rollout <plan>', "offer the update by a staged rollout: a plan file (docs/spec/rollout.md) or default (canary 10 %, 50 %, 100 %; halt at 20 % failures; roll back); the sim's image then fails its self-test on hardware revision rev-b (the boards behind gw-3); only with the sim's own update")
    .option('--revoke <what@second>', "revoke as an operator at that simulated second: device@S (device 0's identity), device:N@S, or command-key@S (the fleet's command key; the sim keeps commanding with it); measures how soon the ingest and the devices refuse it", parseRevokeFlag)
    .option('--console-pty <path>', "serve the device's serial console on this serial device (one end of a pty pair; holdfast console --port reads the other); only with --devices 1 --engine node")
    .option('--broker <url>', 'use this broker (mqtt://host:port, MQTT 5, anonymous) instead of starting mosquitto or aedes')
    .option('--report <file>', 'write the report page (self-contained HTML) here')
    .option('--keep-flash <dir>', "write each device's flash image (.hfimg, for holdfast inspect) into this folder")
    .option('--json', 'print {ok, appended, accepted, duplicatesDropped, lost, undelivered, counterRegressions, replaysAccepted, forgeriesAccepted, bricked, rolledBack, committed, powerCuts, linkFlaps, clockSkews, auditBreaks, revokedAccepted, revocation, updates, broker, engine, seed, devices, duration, ...}')
    .action(async (flags: SimFlags, command: Command) => run(flags, command));
}

/** A path the report can be written to: its folder is a folder or can be made, and it is not a folder itself. */
function checkReportPath(path: string): void {
  if (!/\.html?$/i.test(path)) throw new UsageError(`expected a file name ending in .html, got ${JSON.stringify(path.slice(0, 200))}`, { field: '--report' });
  if (statOf(path)?.isDirectory()) throw new UsageError(`${path} is a folder; expected a file name ending in .html`, { field: '--report' });
  checkFolderPath(dirname(resolve(path)), '--report');
}

/** The path's stats, or undefined when it does not exist (also when a part of it is a file: the walk up finds that part). */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** Every existing part of `path` must be a folder (so mkdir can make the rest). */
function checkFolderPath(path: string, field: string): void {
  let at = resolve(path);
  for (;;) {
    const stats = statOf(at);
    if (stats !== undefined) {
      if (!stats.isDirectory()) throw new UsageError(`${relative(process.cwd(), at) || at} is a file; expected a folder`, { field });
      return;
    }
    const parent = dirname(at);
    if (parent === at) return;
    at = parent;
  }
}

/** A path as the user would type it: relative to the current directory when it is under it, else absolute. */
function shown(path: string): string {
  const rel = relative(process.cwd(), resolve(path));
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? resolve(path) : rel;
}

async function run(flags: SimFlags, command: Command): Promise<void> {
  let broker: BrokerChoice = { kind: 'auto' };
  let brokerRestarts = flags.brokerRestarts;
  if (flags.broker !== undefined) {
    const url = parseBrokerUrl(flags.broker);
    if (!url) throw new UsageError(`expected mqtt://host:port (port 1..65535), got ${JSON.stringify(flags.broker.slice(0, 100))}`, { field: '--broker' });
    if (command.getOptionValueSource('brokerRestarts') === 'cli' && flags.brokerRestarts > 0) throw new UsageError('a broker given with --broker cannot be restarted by the simulator: use --broker-restarts 0', { field: '--broker-restarts' });
    broker = { kind: 'external', ...url };
    brokerRestarts = 0;
  }
  let update: Scenario['update'];
  if (flags.update === false) {
    if (flags.manifest !== undefined || flags.badUpdate !== undefined) throw new UsageError('--no-update cannot go with --manifest or --bad-update', { field: '--no-update' });
    update = { kind: 'none' };
  } else if (typeof flags.update === 'string') {
    if (flags.manifest === undefined) throw new UsageError('--update needs --manifest <file> (holdfast sign writes it beside the image)', { field: '--manifest' });
    if (flags.badUpdate !== undefined) throw new UsageError("--bad-update needs the sim's own signing keys: leave out --update", { field: '--bad-update' });
    update = { kind: 'given', imagePath: flags.update, manifestPath: flags.manifest, trustDir: flags.trust };
  } else {
    if (flags.manifest !== undefined) throw new UsageError('--manifest goes with --update <image>', { field: '--manifest' });
    // The sim's own update always brings its bad image (npm start's scenario); --bad-update picks its kind.
    const bad = flags.badUpdate === true || flags.badUpdate === undefined ? (DEFAULT_SCENARIO.update.bad ?? 'hang') : (flags.badUpdate as 'hang' | 'fail-checks');
    update = { kind: 'sim', ...(bad !== undefined ? { bad } : {}) };
  }
  let rolloutPlan;
  if (flags.rollout !== undefined) {
    if (update.kind !== 'sim' || flags.badUpdate !== undefined) throw new UsageError("--rollout offers the sim's own image that fails on rev-b boards: leave out --update, --no-update and --bad-update", { field: '--rollout' });
    const { loadRolloutPlan } = await import('../../sim/fleet/rollout.ts');
    const { FleetInputError } = await import('../../sim/fleet/fleet-firmware.ts');
    try {
      rolloutPlan = loadRolloutPlan(flags.rollout);
    } catch (error) {
      if (error instanceof FleetInputError) throw new UsageError(error.message, { field: error.field });
      throw error;
    }
    update = { kind: 'sim', rollout: rolloutPlan.target };
  }
  if (flags.consolePty !== undefined) {
    if (flags.devices !== 1) throw new UsageError('--console-pty serves one device: use --devices 1', { field: '--console-pty' });
    if (flags.engine !== 'node') throw new UsageError('--console-pty needs the device in this process: use --engine node', { field: '--console-pty' });
    if (!statOf(flags.consolePty)) throw new UsageError(`${flags.consolePty} does not exist: expected a serial device (one end of a pty pair, e.g. socat -d -d pty,raw,echo=0 pty,raw,echo=0)`, { field: '--console-pty' });
  }
  if (flags.revoke !== undefined) {
    if (flags.revoke.atSec >= flags.duration) throw new UsageError(`--revoke at ${flags.revoke.atSec} s is not within the run's ${flags.duration} simulated s`, { field: '--revoke' });
    if (flags.revoke.target === 'device' && flags.revoke.device >= flags.devices) throw new UsageError(`--revoke names device ${flags.revoke.device}, but the fleet has ${flags.devices} (0..${flags.devices - 1})`, { field: '--revoke' });
  }
  if (flags.report !== undefined) checkReportPath(flags.report);
  if (flags.keepFlash !== undefined) checkFolderPath(flags.keepFlash, '--keep-flash');
  if (flags.engine === 'xs') {
    const { requireXsEngine } = await import('./demo.ts');
    await requireXsEngine();
  }
  const scenario: Scenario = {
    devices: flags.devices,
    engine: flags.engine,
    durationSec: flags.duration,
    seed: flags.seed,
    powerCutsPerHour: flags.powerCuts,
    linkFlapsPerHour: flags.linkFlaps,
    brokerRestartsPerHour: brokerRestarts,
    replays: flags.replays,
    broker,
    recordEverySec: DEFAULT_SCENARIO.recordEverySec,
    clockSkewPerHour: flags.clockSkew,
    update,
    ...(flags.revoke !== undefined ? { revoke: flags.revoke } : {}),
  };
  const { fleetFirmware, FleetInputError } = await import('../../sim/fleet/fleet-firmware.ts');
  const { FLEET_CONSTANTS } = await import('../../sim/fleet/scenario.ts');
  let firmware;
  try {
    firmware = fleetFirmware(scenario.seed, scenario.durationSec, update, FLEET_CONSTANTS.outboxBlocks);
  } catch (error) {
    if (error instanceof FleetInputError) throw new UsageError(error.message, { field: error.field });
    throw error;
  }
  const { runFleet, BrokerUnreachableError } = await import('../../sim/fleet/runner.ts');
  const { progressView } = await import('../../sim/fleet/progress.ts');
  const { summaryLines } = await import('../../sim/fleet/summary.ts');
  const view = progressView(process.stderr, !flags.json);
  if (!flags.json) console.log(`sim: ${scenario.devices} devices, firmware in ${scenario.engine === 'xs' ? 'XS' : 'Node'}, ${scenario.durationSec} simulated s, seed ${scenario.seed}; broker: ${broker.kind === 'external' ? `mqtt://${broker.host}:${broker.port}` : 'mosquitto when on PATH (MQTT 5), else aedes embedded (MQTT 3.1.1)'}`);
  let result;
  try {
    result = await runFleet(scenario, { firmware, ...(flags.consolePty !== undefined ? { consolePty: flags.consolePty } : {}), onProgress: (p) => view.update(p), ...(rolloutPlan !== undefined ? { rollout: rolloutPlan } : {}), ...(flags.keepFlash !== undefined ? { keepFlashDir: flags.keepFlash } : {}) });
  } catch (error) {
    view.end();
    if (error instanceof BrokerUnreachableError) throw new EnvironmentError(error.message, { field: '--broker' });
    throw error;
  }
  view.end();
  const { summary, timeline, flashImages } = result;
  let reportPath: string | undefined;
  if (flags.report !== undefined) {
    const { renderReport } = await import('../../sim/fleet/report.ts');
    try {
      mkdirSync(dirname(resolve(flags.report)), { recursive: true });
    } catch (error) {
      throw fromNodeError(error, flags.report, 'a folder for the report');
    }
    writeFilesAtomically([{ path: flags.report, data: renderReport(summary, timeline), what: 'the report page' }]);
    reportPath = flags.report;
  }
  if (flags.json) {
    console.log(JSON.stringify({ ...summary, report: reportPath ?? null, flashImages }, null, 2));
  } else {
    for (const line of summaryLines(summary)) console.log(line);
    if (flashImages.length > 0) console.log(`flash images: ${flashImages.length} in ${shown(flags.keepFlash as string)} (read one with: holdfast inspect ${shown(flashImages[0])})`);
    if (reportPath !== undefined) console.log(`report: ${shown(reportPath)} (open it in a browser)`);
  }
  process.exitCode = summary.ok ? ExitCode.OK : ExitCode.INVARIANT_BROKEN;
}
