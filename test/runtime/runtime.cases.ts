/**
 * The runtime (firmware/runtime/main.ts; docs/spec/boot-sequence.md and
 * safe-mode.md) on a simulated device, in Node and XS: a clean boot, every
 * boot-stage failure of the table (named, in status, a bit in the health
 * record, an audit event, and the mode it leads to), every safe-mode
 * transition, the audit evidence (watchdog reset, forgeries, replays,
 * records dropped, clock jumps), publishing health records and audit
 * entries through the link, and power cuts at every flash operation of the
 * boot-time writes (plain and strict).
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { AuditLog } from '../../firmware/storage/audit-log.ts';
import { TrustStore } from '../../firmware/update/trust-store.ts';
import { SafeModeStore, SAFE_MODE_CAUSE_CODES } from '../../firmware/runtime/safe-mode.ts';
import { failureBit, type BootFailureCode, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { encodeHealthRecord, RECORD_TYPES } from '../../firmware/runtime/health-record.ts';
import type { CommandOutcome, Runtime } from '../../firmware/runtime/main.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { serve } from '../protocol/client-fakes.ts';
import { SimBootloader } from '../../tools/sim/bootloader.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { selfTest } from '../../firmware/update/health.ts';
import { FakeBroker } from '../protocol/session-broker.ts';
import { equal, ok } from '../support/check.ts';
import { caughtByInvariant, garbage, runnerOptions } from '../support/case-helpers.ts';
import { WriteBackFlash } from '../support/write-back-flash.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import { freshDevice, trialDevice } from './trial-world.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, partsOf, provision, readAudit, type Device, type Fleet, type BootOptions } from './runtime-world.ts';

const OTHER_DEVICE = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0b);
/** The rate limiter starts spent at boot: commands wait a minute (docs/spec/commands.md). */
const AFTER_BOOT_MS = 61_000;

function part(flash: FlashPartition, key: PartitionKey): FlashPartition {
  return partsOf(flash)[key] as FlashPartition;
}

function codes(runtime: Runtime): string {
  return runtime
    .status()
    .failures.map((f) => f.code)
    .join(',');
}

function status(outcome: CommandOutcome): string {
  const r = outcome.result;
  return r.status === 'refused' ? `refused:${r.reason}` : r.status;
}

/** The cases of the failure table: how to break the store, what the runtime must say. */
interface FailureCase {
  readonly what: string;
  readonly skip?: readonly PartitionKey[];
  readonly damage?: (flash: FlashPartition, fleet: Fleet) => void;
  readonly boot?: BootOptions;
  readonly failures: readonly BootFailureCode[];
  /** The cause string of the first failure. */
  readonly cause: string;
  /** The safe-mode cause it leads to (its code), or undefined for normal mode. */
  readonly safeCause: keyof typeof SAFE_MODE_CAUSE_CODES | undefined;
  /** The audit evidence expected (in order, as auditSummary renders it), or 'unavailable'. */
  readonly audit: readonly string[] | 'unavailable';
}

const FAILURES: readonly FailureCase[] = [
  {
    what: 'counter partition unreadable (blank)',
    skip: ['counter'],
    failures: ['counter-unreadable', 'link-unavailable'],
    cause: 'blank',
    safeCause: 'storage',
    audit: ['store-unreadable:counter/blank', 'safe-mode-entered:storage', 'store-unreadable:link/counter-unreadable'],
  },
  {
    what: 'outbox damaged beyond the threshold (a damaged head sector)',
    damage: (flash) => {
      const outbox = part(flash, 'outbox');
      const o = Outbox.open(outbox);
      for (let i = 0; i < 120; i++) o.append(new Uint8Array(60).fill(i));
      outbox.write(4096 + 16, new Uint8Array(16));
    },
    failures: ['outbox-damaged'],
    cause: 'damage-threshold',
    safeCause: 'storage',
    audit: ['store-unreadable:outbox/damage-threshold', 'safe-mode-entered:storage'],
  },
  {
    what: 'outbox partition foreign',
    damage: (flash) => {
      const outbox = part(flash, 'outbox');
      outbox.eraseBlock(0);
      outbox.write(0, garbage(4096, 2));
    },
    failures: ['outbox-unreadable', 'link-unavailable'],
    cause: 'not-formatted',
    safeCause: 'storage',
    audit: ['store-unreadable:outbox/not-formatted', 'safe-mode-entered:storage', 'store-unreadable:link/outbox-unreadable'],
  },
  {
    what: 'audit log unreadable (foreign)',
    damage: (flash) => {
      const audit = part(flash, 'audit');
      for (let b = 0; b < 3; b++) audit.eraseBlock(b);
      audit.write(0, garbage(4096, 3));
    },
    failures: ['audit-unreadable'],
    cause: 'not-formatted',
    safeCause: 'storage',
    audit: 'unavailable',
  },
  {
    what: 'audit log damaged (a chain break in the head block)',
    damage: (flash, fleet) => {
      // Entries written by an earlier boot (a watchdog reset and a forged command), then one of them damaged.
      const d = bootDevice(flash, fleet, { resetReason: 'watchdog' });
      d.clock.advance(AFTER_BOOT_MS);
      d.runtime.handleCommand(fleet.command(1, 'set-output', { target: 0, value: 1 }, OTHER_DEVICE));
      part(flash, 'audit').write(96 + 48, new Uint8Array(16)); // the first entry's body and tag bytes
    },
    failures: ['audit-damaged'],
    cause: 'damaged',
    safeCause: 'storage',
    audit: 'unavailable',
  },
  {
    what: 'trust store newer than the firmware',
    damage: (flash) => {
      const trust = part(flash, 'trust');
      const header = new Uint8Array(16);
      trust.read(0, header);
      const newer = new Uint8Array(4096).fill(0xff);
      newer.set([...header.subarray(0, 4), 3, 0xfc, 0x10, 0x00, 9, 0, 0, 0, 1, 2, 3, 4], 0);
      trust.eraseBlock(0);
      trust.write(0, newer);
    },
    failures: ['trust-unavailable'],
    cause: 'format-too-new',
    safeCause: 'policy',
    audit: ['store-unreadable:trust/format-too-new', 'safe-mode-entered:policy'],
  },
  {
    what: 'trust store never provisioned',
    skip: ['trust'],
    failures: ['trust-unavailable'],
    cause: 'not-provisioned',
    safeCause: 'policy',
    audit: ['store-unreadable:trust/not-provisioned', 'safe-mode-entered:policy'],
  },
  {
    what: 'floor store unreadable (blank)',
    skip: ['floor'],
    failures: ['floor-unreadable'],
    cause: 'blank',
    safeCause: 'policy',
    audit: ['store-unreadable:floor/blank', 'safe-mode-entered:policy'],
  },
  {
    what: 'replay store unreadable (blank)',
    skip: ['replay'],
    failures: ['replay-unreadable'],
    cause: 'blank',
    safeCause: 'storage',
    audit: ['store-unreadable:replay/blank', 'safe-mode-entered:storage'],
  },
  {
    what: 'command journal unreadable (blank)',
    skip: ['journal'],
    failures: ['journal-unreadable'],
    cause: 'blank',
    safeCause: 'storage',
    audit: ['store-unreadable:journal/blank', 'safe-mode-entered:storage'],
  },
  {
    what: 'safe-mode state unreadable (blank)',
    skip: ['safeMode'],
    failures: ['safe-mode-unreadable'],
    cause: 'blank',
    safeCause: 'unreadable',
    audit: ['store-unreadable:safe-mode/blank', 'safe-mode-entered:boot.unreadable'],
  },
  {
    what: 'audit partition missing from the partition table',
    boot: { missing: ['audit'] },
    failures: ['partition-missing', 'audit-unreadable'],
    cause: 'hf_audit',
    safeCause: 'storage',
    audit: 'unavailable',
  },
];

const cases: FirmwareCase[] = [
  {
    name: 'a clean boot: normal mode, no failures, nothing written at boot; the first service appends a health record (type 0x02) that says so',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet);
      const s = d.runtime.status();
      equal(s.mode, 'normal', 'mode');
      equal(codes(d.runtime), '', 'no failures');
      equal(s.bootFailureBits, 0, 'no failure bits');
      equal(auditSummary(flash, fleet).length, 0, 'no audit entries');
      equal(d.runtime.outboxStats()?.queued, 0, 'nothing queued at boot');
      equal(d.runtime.nextDueMs(), 0, 'the health record is due at once');
      d.runtime.service();
      equal(d.runtime.outboxStats()?.queued, 1, 'one health record queued');
      equal(d.runtime.status().healthRecords, 1, 'counted');
      const h = d.runtime.healthRecord();
      equal(h.safeMode, false, 'health: normal');
      equal(h.bootFailures, 0, 'health: no failures');
      equal(h.securityFloor, 0, 'health: floor 0');
      equal(h.counter, d.runtime.counterStats()?.current, 'health: the counter');
      equal(h.resetReason, 'power-on', 'health: reset reason');
      ok((d.runtime.nextDueMs() ?? 0) > 0, 'nothing due right after');
      d.clock.advance(60_000);
      d.runtime.service();
      equal(d.runtime.status().healthRecords, 2, 'the next one a period later');
      return { tasks: d.runtime.tasks().length };
    },
  },
  ...FAILURES.map(
    (f): FirmwareCase => ({
      name: `boot failure: ${f.what} → ${f.failures.join(' + ')}${f.safeCause === undefined ? '' : `, safe mode (${f.safeCause})`}, in status, health record and audit`,
      run(env) {
        const fleet = makeFleet();
        const { flash } = freshDevice(env, fleet, f.skip ?? []);
        f.damage?.(flash, fleet);
        const d = bootDevice(flash, fleet, f.boot);
        const s = d.runtime.status();
        equal(codes(d.runtime), f.failures.join(','), 'failures');
        equal(s.failures[0].cause, f.cause, 'first failure cause');
        let bits = 0;
        for (const c of f.failures) bits |= failureBit(c);
        equal(s.bootFailureBits, bits >>> 0, 'failure bits');
        equal(s.mode, f.safeCause === undefined ? 'normal' : 'safe', 'mode');
        if (f.safeCause !== undefined) equal(s.safeMode.code, SAFE_MODE_CAUSE_CODES[f.safeCause], 'safe-mode cause');
        const h = d.runtime.healthRecord();
        equal(h.bootFailures, bits >>> 0, 'health record bits');
        equal(h.safeMode, f.safeCause !== undefined, 'health record safe mode');
        if (f.audit === 'unavailable') {
          ok(h.auditUnavailable || s.failures.some((x) => x.code === 'audit-damaged'), 'health: audit unavailable');
        } else {
          const summary = auditSummary(flash, fleet);
          equal(summary.join(' | '), f.audit.join(' | '), 'audit evidence');
          equal(readAudit(flash, fleet).breaks.length, 0, 'the chain verifies');
        }
        return { failures: f.failures.length };
      },
    }),
  ),
  {
    name: 'a watchdog reset is audited (watchdog-reset) and shown in the health record; the mode stays normal',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet, { resetReason: 'watchdog' });
      equal(d.runtime.status().mode, 'normal', 'normal');
      equal(auditSummary(flash, fleet).join(','), 'watchdog-reset:watchdog', 'audited');
      equal(d.runtime.healthRecord().resetReason, 'watchdog', 'health');
    },
  },
  {
    name: 'transition normal → safe by a signed enter-safe-mode: physical commands refused, diagnostic and update accepted; persisted across a reboot (audited again at boot)',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet);
      d.clock.advance(AFTER_BOOT_MS);
      equal(status(d.runtime.handleCommand(fleet.command(1, 'set-output', { target: 2, value: 1 }))), 'applied', 'physical in normal mode');
      const entered = d.runtime.handleCommand(fleet.command(2, 'enter-safe-mode'));
      equal(entered.mode, 'entered', 'entered');
      equal(d.runtime.status().mode, 'safe', 'safe');
      equal(status(d.runtime.handleCommand(fleet.command(3, 'set-output', { target: 2, value: 0 }))), 'refused:safe-mode', 'physical refused');
      equal(status(d.runtime.handleCommand(fleet.command(4, 'report-status', { section: 1 }))), 'accepted', 'diagnostic accepted');
      equal(status(d.runtime.handleCommand(fleet.command(5, 'check-update'))), 'accepted', 'update accepted');
      equal(status(d.runtime.handleCommand(fleet.command(6, 'enter-safe-mode'))), 'refused:safe-mode', 'enter again: refused by the table');
      equal(d.actuator.applied.length, 1, 'one effect in all');
      equal(d.runtime.healthRecord().safeMode, true, 'health says so');
      // Telemetry still flows: readings and health records are appended as in normal mode.
      const queued = d.runtime.outboxStats()?.queued ?? 0;
      equal(d.runtime.append(Uint8Array.of(1, 2, 3)).accepted, true, 'a reading is accepted in safe mode');
      d.clock.advance(60_000);
      d.runtime.service();
      ok((d.runtime.outboxStats()?.queued ?? 0) >= queued + 2, 'the reading and a health record are queued');
      equal(d.runtime.append(new Uint8Array(5_000)).accepted, false, 'a reading too large for the outbox is refused, not thrown');
      const again = bootDevice(flash, fleet);
      equal(again.runtime.status().mode, 'safe', 'still safe after a reboot');
      equal(again.runtime.status().safeMode.cause, 'command', 'cause command');
      equal(auditSummary(flash, fleet).join(','), 'safe-mode-entered:command,safe-mode-entered:boot.command', 'audit');
    },
  },
  {
    name: 'transition safe → normal by a signed leave-safe-mode only: a forged or replayed leave changes nothing; after the leave physical commands apply again, across a reboot',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet);
      d.clock.advance(AFTER_BOOT_MS);
      equal(d.runtime.handleCommand(fleet.command(1, 'enter-safe-mode')).mode, 'entered', 'entered');
      const forged = fleet.command(2, 'leave-safe-mode');
      forged[forged.length - 1] ^= 1;
      equal(status(d.runtime.handleCommand(forged)), 'refused:unauthenticated', 'forged leave refused');
      equal(status(d.runtime.handleCommand(fleet.command(1, 'leave-safe-mode'))), 'refused:replay', 'replayed counter refused');
      equal(d.runtime.status().mode, 'safe', 'still safe');
      equal(d.runtime.handleCommand(fleet.command(3, 'leave-safe-mode')).mode, 'left', 'left');
      equal(status(d.runtime.handleCommand(fleet.command(4, 'set-output', { target: 0, value: 1 }))), 'applied', 'physical applies again');
      const again = bootDevice(flash, fleet);
      equal(again.runtime.status().mode, 'normal', 'normal after a reboot');
      equal(auditSummary(flash, fleet).join(','), 'safe-mode-entered:command,forgery-rejected,replay-rejected,safe-mode-left:command', 'audit');
      const h = d.runtime.healthRecord();
      equal(h.forgeryRejections, 1, 'health: forgeries');
      equal(h.replayRejections, 1, 'health: replays');
    },
  },
  {
    name: 'transition safe → safe: a leave is refused while a cause found in this boot stands (no trust root); after re-provisioning and a reboot the leave works',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet, ['trust']);
      const d = bootDevice(flash, fleet);
      equal(d.runtime.status().mode, 'safe', 'safe (policy)');
      d.clock.advance(AFTER_BOOT_MS);
      const leave = d.runtime.handleCommand(fleet.command(1, 'leave-safe-mode'));
      equal(leave.mode, 'leave-refused', 'refused');
      ok((leave.detail ?? '').includes('trust-unavailable'), `names the cause: ${leave.detail}`);
      equal(d.runtime.status().mode, 'safe', 'still safe');
      new TrustStore(part(flash, 'trust'), fleet.crypto).save(fleet.root.root1);
      const again = bootDevice(flash, fleet);
      equal(codes(again.runtime), '', 'no failure now');
      equal(again.runtime.status().mode, 'safe', 'still safe: only a command leaves');
      again.clock.advance(AFTER_BOOT_MS);
      equal(again.runtime.handleCommand(fleet.command(1000, 'leave-safe-mode')).mode, 'left', 'left');
      equal(bootDevice(flash, fleet).runtime.status().mode, 'normal', 'normal after a reboot');
    },
  },
  {
    name: 'transition unreadable → safe → normal: an unreadable safe-mode partition boots in safe mode; a signed leave formats it',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const safe = part(flash, 'safeMode');
      safe.eraseBlock(0);
      safe.write(0, garbage(64, 4));
      const d = bootDevice(flash, fleet);
      equal(d.runtime.status().mode, 'safe', 'safe');
      equal(d.runtime.status().safeMode.unreadable, 'damaged', 'unreadable: damaged');
      d.clock.advance(AFTER_BOOT_MS);
      equal(d.runtime.handleCommand(fleet.command(1, 'leave-safe-mode')).mode, 'left', 'left');
      const again = bootDevice(flash, fleet);
      equal(again.runtime.status().mode, 'normal', 'normal after a reboot');
      equal(codes(again.runtime), '', 'no failure');
    },
  },
  {
    name: 'time: signed times within the bound do nothing; a jump beyond it is audited and counted, never a refusal; beyond the manipulation bound the device enters safe mode (clock)',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet, { config: { clockJumpBoundMs: 10_000, clockManipulationBoundMs: 3_600_000 } });
      const wall = 1_800_000_000_000;
      d.runtime.noteSignedTime(wall);
      d.clock.advance(AFTER_BOOT_MS);
      d.runtime.noteSignedTime(wall + AFTER_BOOT_MS + 5_000);
      equal(d.runtime.status().clockJumps, 0, 'drift within the bound');
      d.runtime.noteSignedTime(wall + AFTER_BOOT_MS + 600_000);
      equal(d.runtime.status().clockJumps, 1, 'a jump');
      equal(d.runtime.status().mode, 'normal', 'still normal');
      equal(status(d.runtime.handleCommand(fleet.command(1, 'set-output', { target: 1, value: 1 }))), 'applied', 'commands are not refused for it');
      d.runtime.noteSignedTime(wall - 86_400_000);
      equal(d.runtime.status().clockJumps, 2, 'a second jump');
      equal(d.runtime.status().mode, 'safe', 'manipulation: safe mode');
      equal(d.runtime.status().safeMode.cause, 'clock', 'cause clock');
      equal(d.runtime.handleCommand(fleet.command(2, 'leave-safe-mode')).mode, 'leave-refused', 'no leave in this boot');
      const h = d.runtime.healthRecord();
      equal(h.clockJumps, 2, 'health: jumps');
      equal(h.clockJumpSeen, true, 'health: flag');
      const audit = auditSummary(flash, fleet);
      equal(audit.join(','), 'clock-jump,clock-jump,safe-mode-entered:clock', 'audit');
      const jump = readAudit(flash, fleet).records[0].event as { deltaMs: number; wallMs: number };
      equal(jump.deltaMs, 600_000, 'the delta: 661 s of signed time over 61 s of monotonic time');
    },
  },
  {
    name: 'audit: forged (another device, bad signature) and replayed commands are audited; with a journal unavailable physical commands are refused while the leave still works',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet, ['journal']);
      const d = bootDevice(flash, fleet);
      d.clock.advance(AFTER_BOOT_MS);
      equal(status(d.runtime.handleCommand(fleet.command(1, 'report-status', { section: 0 }, OTHER_DEVICE))), 'refused:unauthenticated', 'other device');
      equal(status(d.runtime.handleCommand(fleet.command(2, 'report-status', { section: 0 }))), 'accepted', 'diagnostic');
      equal(status(d.runtime.handleCommand(fleet.command(2, 'report-status', { section: 0 }))), 'refused:replay', 'replay');
      equal(d.runtime.healthRecord().commandsUnavailable, true, 'health: commands unavailable');
      const audit = auditSummary(flash, fleet);
      equal(audit.slice(2).join(','), 'forgery-rejected,replay-rejected', 'audit');
    },
  },
  {
    name: 'audit: records dropped by a full outbox are audited with their count and total',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet, { config: { healthPeriodMs: 3_600_000, auditPublishPeriodMs: 3_600_000 } });
      let appended = 0;
      while ((d.runtime.outboxStats()?.dropped ?? 0) === 0 && appended < 2_000) {
        equal(d.runtime.append(new Uint8Array(100).fill(appended & 0xff)).accepted, true, 'append');
        appended++;
      }
      const dropped = d.runtime.outboxStats()?.dropped ?? 0;
      ok(dropped > 0, 'the outbox dropped records');
      const audit = readAudit(flash, fleet).records.map((r) => r.event as { kind: string; count?: number; total?: number });
      equal(audit.length, 1, 'one drop entry');
      equal(audit[0].kind, 'records-dropped', 'kind');
      equal(audit[0].count, dropped, 'count');
      equal(audit[0].total, dropped, 'total');
      return { appended, dropped };
    },
  },
  {
    name: 'the link: connects through the broker, publishes the health record (type 0x02) and the audit entries (type 0x03) on the telemetry topic; entries are acknowledged once durable in the outbox',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet, { resetReason: 'watchdog' });
      const broker = new FakeBroker();
      broker.reset({ receiveMaximum: 4, autoAck: () => 0 });
      d.net.last.accept(4096);
      serve(d.net.last, broker, 4096);
      // What the first health record will say (nothing changes between this and the service that publishes it).
      const first = encodeHealthRecord(d.runtime.healthRecord());
      d.runtime.service();
      serve(d.net.last, broker, 4096);
      d.runtime.service();
      serve(d.net.last, broker, 4096);
      equal(d.runtime.status().linkConnected, true, 'connected');
      equal(d.runtime.status().auditPublished, 1, 'the watchdog-reset entry published');
      equal(d.runtime.auditStats()?.ackCounter, d.runtime.auditStats()?.lastCounter, 'acknowledged');
      const payloads = broker.publishes().map((p) => p.payload);
      const contains = (hay: Uint8Array, needle: Uint8Array): boolean => {
        outer: for (let i = 0; i + needle.length <= hay.length; i++) {
          for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
          return true;
        }
        return false;
      };
      const entry = readAudit(flash, fleet).records[0].bytes;
      const auditRecord = new Uint8Array(entry.length + 1);
      auditRecord[0] = RECORD_TYPES.audit;
      auditRecord.set(entry, 1);
      ok(payloads.some((p) => contains(p, auditRecord)), 'an envelope carries the audit entry');
      equal(first[0], RECORD_TYPES.health, 'type byte');
      ok(payloads.some((p) => contains(p, first)), 'an envelope carries that health record, byte for byte');
      ok(payloads.length >= 2, `at least two records published, got ${payloads.length}`);
      return { published: payloads.length };
    },
  },
  {
    name: 'boot slot: a trial boot arms the watchdog, its health checks run as a scheduler task, and it commits (trial-started, update-committed; slot states in the health record)',
    run(env) {
      const t = trialDevice(env);
      equal(t.d.runtime.status().trial, 'running', 'a trial');
      equal(t.d.watchdog.armed, true, 'the watchdog is armed');
      t.d.runtime.service();
      equal(t.d.runtime.status().trial, 'committed', 'committed');
      equal(t.d.watchdog.armed, false, 'the watchdog disarmed');
      const h = t.d.runtime.healthRecord();
      equal(h.runningSlot, 1, 'running slot');
      equal(h.slotStates[1], 'valid', 'slot 1 valid');
      equal(h.imageVersion, 2, 'image version');
      equal(h.trialRunning, false, 'no trial now');
      equal(auditSummary(t.flash, t.fleet).join(','), 'trial-started,update-committed', 'audit');
    },
  },
  {
    name: 'boot slot: a trial whose health check fails rolls back (update-rolled-back audited, the device restarts)',
    run(env) {
      const t = trialDevice(env, [selfTest(() => false)]);
      equal(t.d.runtime.status().trial, 'running', 'a trial');
      let reset: DeviceReset | undefined;
      try {
        t.d.runtime.service();
      } catch (error) {
        if (!(error instanceof DeviceReset)) throw error;
        reset = error;
      }
      ok(reset !== undefined, 'the device restarted');
      equal(auditSummary(t.flash, t.fleet).join(','), 'trial-started,update-rolled-back:self-test-failed-self-te', 'audit: the reason as a 24-byte token');
      const slots = new SimBootloader({ otadata: t.update.otadata, slots: t.update.slots, createSha256: () => t.world.crypto.createSha256(), chip: t.world.chip }).boot();
      equal(slots.slot, 0, 'the bootloader boots the old slot');
    },
  },
  {
    name: 'transition normal → safe (no-rollback): a failed trial that cannot roll back keeps running, is a boot failure and enters safe mode',
    run(env) {
      const t = trialDevice(env, [selfTest(() => false)], true);
      t.d.runtime.service();
      const s = t.d.runtime.status();
      equal(s.trial, 'rollback-impossible', 'rollback impossible');
      equal(codes(t.d.runtime), 'rollback-impossible', 'the failure');
      equal(s.mode, 'safe', 'safe mode');
      equal(s.safeMode.cause, 'no-rollback', 'cause');
      equal(auditSummary(t.flash, t.fleet).join(','), 'trial-started,rollback-impossible:self-test-failed-self-te,store-unreadable:update/rollback-impossible,safe-mode-entered:no-rollback', 'audit');
    },
  },
  ...(['plain', 'strict'] as const).map((mode): FirmwareCase => ({
    name: `power cuts at every flash operation of boots that enter safe mode for a policy cause, audit it and publish (${mode}): every boot is safe, the audit chain verifies, no returned entry is lost`,
    run: (env) => ({ ...runExhaustive(policyBootScenario(mode), runnerOptions(env, { variants: 2 })) }),
  })),
  ...(['plain', 'strict'] as const).map((mode): FirmwareCase => ({
    name: `power cuts at every flash operation of a signed enter-safe-mode then leave-safe-mode (${mode}): after a cut the state is the answered one, or the one in flight; once answered never lost`,
    run: (env) => {
      const tally: CommandTally = { enterLanded: 0, enterNotYet: 0, leaveLanded: 0, leaveNotYet: 0 };
      const report = runExhaustive(commandScenario(mode, tally), runnerOptions(env, { variants: 2 }));
      // Both outcomes of a cut during each transition occur, and each is handled.
      ok(tally.enterLanded > 0 && tally.enterNotYet > 0, `cuts during the enter: landed ${tally.enterLanded}, not yet ${tally.enterNotYet}`);
      ok(tally.leaveLanded > 0 && tally.leaveNotYet > 0, `cuts during the leave: landed ${tally.leaveLanded}, not yet ${tally.leaveNotYet}`);
      return { ...report, ...tally };
    },
  })),
  {
    name: 'planted bug: a safe-mode partition whose writes are not durable when they return loses an answered transition, and the command scenario catches it',
    run(env) {
      const tally: CommandTally = { enterLanded: 0, enterNotYet: 0, leaveLanded: 0, leaveNotYet: 0 };
      const failure = caughtByInvariant(
        () => runExhaustive(commandScenario('plain', tally, (f) => new WriteBackFlash(f)), runnerOptions(env, { variants: 1, tears: ['prefix'] })),
        /answered (enter|leave|transition) was lost/,
        'a write-back safe-mode partition',
      );
      return { caughtAt: failure.cutPlans[0].atOperation };
    },
  },
];

interface PolicyState {
  provisioned: boolean;
  /** Clean boots completed (two finish the run). */
  completed: number;
  /** Safe mode was durable (the constructor returned) in an earlier boot. */
  safeDurable: boolean;
  /** Counters of audit entries read after a completed boot: never lost. */
  entries: number[];
}

function checkAudit(flash: FlashPartition, fleet: Fleet, state: { entries: number[] }): number[] {
  const read = readAudit(flash, fleet);
  equal(read.breaks.length, 0, `audit chain breaks: ${JSON.stringify(read.breaks)}`);
  const counters = read.records.map((r) => r.counter);
  for (const c of state.entries) ok(counters.includes(c), `audit entry ${c} lost`);
  for (let i = 1; i < counters.length; i++) ok(counters[i] > counters[i - 1], 'audit counters increase');
  return counters;
}

function policyBootScenario(mode: FlashMode): CutScenario<PolicyState> {
  const fleet = makeFleet();
  return {
    name: `runtime/policy-boot/${mode}`,
    flash: flashOptions(mode),
    createState: () => ({ provisioned: false, completed: 0, safeDurable: false, entries: [] }),
    boot(flash, state) {
      if (!state.provisioned) {
        provision(flash, fleet, ['trust']);
        state.provisioned = true;
      }
      for (;;) {
        if (state.safeDurable) equal(SafeModeStore.open(part(flash, 'safeMode')).active, true, 'the durable safe mode reads safe');
        checkAudit(flash, fleet, state);
        const d: Device = bootDevice(flash, fleet);
        equal(d.runtime.status().mode, 'safe', 'every boot is in safe mode (persisted or re-detected)');
        state.safeDurable = true;
        d.runtime.service();
        state.entries = checkAudit(flash, fleet, state);
        state.completed++;
        if (state.completed === 2) return;
      }
    },
  };
}

interface CommandState {
  provisioned: boolean;
  /** 0: enter not answered yet; 1: entered answered; 2: left answered. */
  step: number;
  inFlight: 'enter' | 'leave' | undefined;
  /** Transitions the state held when the last answer returned. */
  answered: number;
  entries: number[];
  boots: number;
}

interface CommandTally {
  enterLanded: number;
  enterNotYet: number;
  leaveLanded: number;
  leaveNotYet: number;
}

function commandScenario(mode: FlashMode, tally: CommandTally, wrapSafe?: (flash: FlashPartition) => FlashPartition): CutScenario<CommandState> {
  const fleet = makeFleet();
  return {
    name: `runtime/command-safe-mode/${mode}`,
    flash: flashOptions(mode),
    createState: () => ({ provisioned: false, step: 0, inFlight: undefined, answered: 0, entries: [], boots: 0 }),
    boot(flash, state) {
      if (!state.provisioned) {
        provision(flash, fleet);
        state.provisioned = true;
      }
      state.boots++;
      checkAudit(flash, fleet, state);
      const d = bootDevice(flash, fleet, wrapSafe === undefined ? {} : { extraPartitions: { hf_safemode: wrapSafe(part(flash, 'safeMode')) } });
      const safe = d.runtime.status().mode === 'safe';
      const transitions = d.runtime.status().safeMode.transitions ?? -1;
      ok(transitions >= state.answered, `an answered transition was lost: the state holds ${transitions} transitions, ${state.answered} were answered`);
      // An unanswered transition (a cut struck while it was in flight) may have landed; an answered one is never lost.
      if (state.step === 0 && safe) {
        equal(state.inFlight, 'enter', 'safe mode without an enter in flight');
        tally.enterLanded++;
        state.step = 1;
      } else if (state.inFlight === 'enter') tally.enterNotYet++;
      if (state.step === 1 && !safe) {
        equal(state.inFlight, 'leave', 'an answered enter was lost');
        tally.leaveLanded++;
        state.step = 2;
      } else if (state.inFlight === 'leave') tally.leaveNotYet++;
      if (state.step === 2) equal(safe, false, 'an answered leave was lost');
      state.inFlight = undefined;
      d.clock.advance(AFTER_BOOT_MS);
      // Counters above the replay store's restart floor of every earlier boot.
      const counter = state.boots * 1_000;
      if (state.step === 0) {
        state.inFlight = 'enter';
        equal(d.runtime.handleCommand(fleet.command(counter, 'enter-safe-mode')).mode, 'entered', 'entered');
        state.inFlight = undefined;
        state.answered = d.runtime.status().safeMode.transitions ?? -1;
        state.step = 1;
      }
      state.entries = checkAudit(flash, fleet, state);
      if (state.step === 1) {
        state.inFlight = 'leave';
        equal(d.runtime.handleCommand(fleet.command(counter + 1, 'leave-safe-mode')).mode, 'left', 'left');
        state.inFlight = undefined;
        state.answered = d.runtime.status().safeMode.transitions ?? -1;
        state.step = 2;
      }
      state.entries = checkAudit(flash, fleet, state);
    },
  };
}

export const suite: CaseSuite = { name: 'runtime boot, safe mode and audit', cases };
