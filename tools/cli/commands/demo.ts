/**
 * `holdfast demo` (what `npm start` runs until the simulator command lands):
 * real firmware in the real XS engine appends telemetry frames to simulated
 * flash, the power is cut in the middle of a write, a new XS worker boots
 * with nothing but the flash, recovers, and carries on.
 */
import type { Command } from 'commander';
import { accessSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import type { XsWorker } from '../../xs/xsnap-worker.ts';
import { ExitCode } from '../exit-codes.ts';
import { REPO_ROOT } from '../package-info.ts';
import { parseInteger } from '../../keys/cli-options.ts';
import { EnvironmentError, fromNodeError } from '../errors.ts';
import { checkOutputDir, writeFilesAtomically } from '../files.ts';
import { forgetOnExit, removeOnExit } from '../cleanup.ts';

interface DemoOptions {
  json?: boolean;
  cutAt: number;
  seed: number;
  out: string;
}

/** The demo appends 60 frames before the cut: a cut at operation 0..100000 is meaningful. */
const MAX_CUT_AT = 100_000;

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('firmware in XS writes telemetry to simulated flash, loses power mid-write, reboots and recovers')
    .option('--cut-at <operation>', `flash operation index the power cut tears, 0..${MAX_CUT_AT}`, parseInteger(0, MAX_CUT_AT), 23)
    .option('--seed <n>', 'seed for the torn write, 0..2^32-1', parseInteger(0, 0xffffffff), 2026)
    .option('--out <dir>', 'where the flash image goes (relative to the current directory)', '.holdfast/demo')
    .option('--json', 'machine-readable report')
    .action(async (options: DemoOptions) => {
      // Everything the demo needs is checked before XS starts.
      checkOutputDir(options.out, 'the demo output folder');
      await requireXsEngine();
      const report = await runDemo(options.cutAt, options.seed, options.out, options.json ? () => {} : (line) => console.log(line));
      if (options.json) console.log(JSON.stringify(report, null, 2));
      process.exitCode = report.ok ? ExitCode.OK : ExitCode.FAILED;
    });
}

/** The XS engine (xsnap-worker, built by `npm ci`) must be there: exit 3 otherwise. */
export async function requireXsEngine(): Promise<void> {
  const { xsnapWorkerPath } = await import('../../xs/xsnap-worker.ts');
  const bin = xsnapWorkerPath();
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new EnvironmentError('the XS engine (xsnap-worker) is not built: expected an executable there; run `npm ci` or `npm rebuild @agoric/xsnap`', { file: bin });
  }
}

export async function runDemo(cutAt: number, seed: number, outDir: string, say: (line: string) => void) {
  const { HostServices } = await import('../../xs/host-services.ts');
  const { XsWorker } = await import('../../xs/xsnap-worker.ts');
  const { fromUtf8, utf8 } = await import('../../xs/wire.ts');
  const { encodeImage } = await import('../../sim/flash/image-codec.ts');
  const code = await bundleGuest();
  const services = new HostServices(outDir, say);
  const command = <T>(worker: XsWorker, message: unknown): T & { compute: number } => {
    const { reply, meter } = worker.command(utf8(JSON.stringify(message)));
    return { ...(JSON.parse(fromUtf8(reply)) as T), compute: meter.compute };
  };

  // The XS bridge blocks the event loop while a step runs; between steps the
  // loop turns, so a SIGINT is handled there (bin/holdfast.js exits and the
  // workers' exit hooks remove their pipe folders).
  const pause = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  say('boot 1: XS worker starts the firmware on a blank 16 KiB flash partition (4 sectors, plain NOR)');
  const first = XsWorker.spawn({ onCommand: services.handle });
  await pause();
  first.evaluate(code);
  await pause();
  const boot1 = command(first, { step: 'boot' }) as { handle: number; frames: number; compute: number };
  await pause();
  const flash = services.flashes.get(boot1.handle)!;
  flash.armCut({ atOperation: cutAt, seed });
  say(`  power cut armed at flash operation ${cutAt} (seed ${seed})`);
  const run1 = command(first, { step: 'append', count: 60 }) as { appended: number; cut: boolean; compute: number };
  await pause();
  first.close();
  const torn = flash.lastTornOperation();
  say(`  ${run1.appended} telemetry frames appended, then the power failed${torn ? ` tearing a ${torn.byteLength}-byte ${torn.kind} at byte ${torn.byteOffset}` : ''}`);
  say('  the XS worker is gone: all RAM state is lost; only the flash remains');

  flash.powerOn();
  const second = XsWorker.spawn({ onCommand: services.handle });
  await pause();
  second.evaluate(code);
  await pause();
  const boot2 = command(second, { step: 'boot', handle: boot1.handle }) as { frames: number; damagedBlocks: number[]; readings: number[]; compute: number };
  await pause();
  const intact = boot2.readings.every((n, i) => n === i);
  say(`boot 2: a new XS worker recovers ${boot2.frames} frames from flash, in order: ${intact ? 'yes' : 'NO'}; torn frame skipped in sector(s) ${boot2.damagedBlocks.join(', ') || 'none'}`);
  const run2 = command(second, { step: 'append', count: 20 }) as { appended: number; compute: number };
  await pause();
  const boot3 = command(second, { step: 'boot', handle: boot1.handle }) as { frames: number; readings: number[] };
  second.close();
  say(`  appended ${run2.appended} more; a remount finds ${boot3.frames} frames`);

  try {
    mkdirSync(outDir, { recursive: true });
  } catch (error) {
    throw fromNodeError(error, outDir, 'a folder for the flash image');
  }
  const imagePath = join(outDir, 'flash.hfimg');
  writeFilesAtomically([{ path: imagePath, data: encodeImage(flash), what: 'the flash image' }]);
  const ok = intact && boot2.frames >= run1.appended && boot2.frames <= run1.appended + 1 && boot3.frames === boot2.frames + run2.appended;
  const counters = { ...flash.counters };
  say(`flash traffic: ${counters.bytesProgrammed} bytes programmed, ${counters.bytesRead} read, ${counters.erases} erases, ${counters.operations} operations`);
  say(`XS compute for ${run2.appended} appends: ${run2.compute} (${Math.round(run2.compute / Math.max(1, run2.appended))} per append, including the host bridge)`);
  say(`flash image written to ${relative(process.cwd(), imagePath)}`);
  say(ok ? 'demo: every frame whose append returned survived the power cut; nothing torn was delivered' : 'demo: FAILED: recovery lost or invented frames');
  return { ok, cutAt, seed, appendedBeforeCut: run1.appended, recovered: boot2.frames, damagedBlocks: boot2.damagedBlocks, appendedAfter: run2.appended, finalFrames: boot3.frames, flash: counters, xsComputePerAppend: run2.compute / Math.max(1, run2.appended), imagePath };
}

async function bundleGuest(): Promise<string> {
  const { bundleForXs } = await import('../../xs/bundle.ts');
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-demo-'));
  removeOnExit(dir);
  try {
    const entry = join(dir, 'entry.ts');
    writeFileSync(entry, `import { serveDemo } from ${JSON.stringify(join(REPO_ROOT, 'tools/demo/guest.ts'))};\nserveDemo();\n`);
    return await bundleForXs(entry);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    forgetOnExit(dir);
  }
}
