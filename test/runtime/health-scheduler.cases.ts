/**
 * The health record codec (docs/spec/health-record.md) and the cooperative
 * scheduler (firmware/runtime/scheduler.ts), in Node and XS: the byte table
 * field by field, every refusal code, and the scheduler's due times across
 * the 2^32 tick wrap.
 */
import { decodeHealthRecord, encodeHealthRecord, HEALTH_COUNTS, HEALTH_RECORD_LENGTH, HealthCounters, RECORD_TYPES, type HealthRecord, type HealthRecordErrorCode } from '../../firmware/runtime/health-record.ts';
import { Scheduler } from '../../firmware/runtime/scheduler.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';

/** The record of the spec's example (docs/spec/health-record.md; test/runtime/boot-spec.test.ts compares the hex). */
export const SAMPLE: HealthRecord = Object.freeze({
  safeMode: true,
  trialRunning: false,
  linkConnected: true,
  commandsUnavailable: false,
  auditUnavailable: true,
  clockJumpSeen: true,
  safeModeCause: 0x03,
  resetReason: 'watchdog',
  runningSlot: 1,
  slotStates: Object.freeze(['aborted', 'pending-verify'] as const),
  imageVersion: 0x01020304,
  securityFloor: null,
  bootFailures: 0x2005,
  counter: 2 ** 40 + 7,
  outboxQueued: 17,
  outboxDropped: 0x1_0000_0005,
  outboxLost: 2,
  replayRejections: 3,
  forgeryRejections: 4,
  clockJumps: 5,
  uptimeSeconds: 3600,
  auditLastCounter: 99,
});

function u32At(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x100_0000;
}

function refused(bytes: Uint8Array, code: HealthRecordErrorCode, what: string): void {
  const error = throws(() => decodeHealthRecord(bytes), 'HealthRecordError', what) as Error & { code: string };
  equal(error.code, code, `${what}: code (${error.message})`);
}

const cases: FirmwareCase[] = [
  {
    name: 'health record: 64 bytes, type 0x02, format 1, every field at its offset in the byte table, and back',
    run() {
      const b = encodeHealthRecord(SAMPLE);
      equal(b.length, HEALTH_RECORD_LENGTH, 'length');
      equal(b[0], RECORD_TYPES.health, 'type byte');
      equal(b[1], 1, 'format version');
      equal(b[2], 0x01 | 0x04 | 0x10 | 0x20, 'flags');
      equal(b[3], 0x03, 'safe-mode cause');
      equal(b[4], 2, 'reset reason watchdog');
      equal(b[5], 1, 'running slot');
      equal(b[6], 4, 'slot 0 aborted');
      equal(b[7], 1, 'slot 1 pending-verify');
      equal(u32At(b, 8), 0x01020304, 'image version');
      equal(u32At(b, 12), 0xffffffff, 'floor unknown');
      equal(u32At(b, 16), 0x2005, 'boot failures');
      equal(u32At(b, 20), 7, 'counter low');
      equal(u32At(b, 24), 256, 'counter high');
      equal(u32At(b, 28), 17, 'queued');
      equal(u32At(b, 32), 0xffffffff, 'dropped clamps to u32');
      equal(u32At(b, 52), 3600, 'uptime');
      equal(u32At(b, 56), 99, 'audit counter');
      const back = decodeHealthRecord(b);
      for (const key of Object.keys(SAMPLE) as (keyof HealthRecord)[]) {
        if (key === 'slotStates') equal(back.slotStates.join(','), SAMPLE.slotStates.join(','), key);
        else if (key === 'outboxDropped') equal(back[key], 0xffffffff, key);
        else equal(back[key], SAMPLE[key], key);
      }
    },
  },
  {
    name: 'health record: unknown slots, slot and floor read back as null; a refusal code for every malformation',
    run() {
      const b = encodeHealthRecord({ ...SAMPLE, runningSlot: null, slotStates: [null, 'unrecognized'], securityFloor: 0, imageVersion: null });
      const back = decodeHealthRecord(b);
      equal(back.runningSlot, null, 'running slot');
      equal(back.slotStates[0], null, 'slot 0');
      equal(back.slotStates[1], 'unrecognized', 'slot 1');
      equal(back.securityFloor, 0, 'floor 0 is not unknown');
      equal(back.imageVersion, null, 'image version');
      refused(b.subarray(0, 1), 'truncated', 'one byte');
      refused(b.subarray(0, 63), 'truncated', '63 bytes');
      const long = new Uint8Array(65);
      long.set(b);
      refused(long, 'trailing-bytes', '65 bytes');
      const mutate = (at: number, value: number): Uint8Array => {
        const c = b.slice();
        c[at] = value;
        return c;
      };
      refused(mutate(0, RECORD_TYPES.reading), 'not-health', 'a reading');
      refused(mutate(1, 2), 'format-too-new', 'format 2');
      refused(mutate(1, 0), 'not-formatted', 'format 0');
      refused(mutate(2, 0x80), 'bad-value', 'reserved flag');
      refused(mutate(4, 9), 'bad-value', 'reset reason');
      refused(mutate(5, 2), 'bad-value', 'slot 2');
      refused(mutate(6, 7), 'bad-value', 'slot state');
      refused(mutate(27, 0x20), 'bad-value', 'counter above 2^53');
    },
  },
  {
    name: 'health counts: every count starts at 0 each boot, counts one at a time, saturates at 2^53 - 1; uptime accumulates; the record\'s u32 fields saturate at 0xFFFFFFFF',
    run() {
      const c = new HealthCounters();
      const names = Object.keys(HEALTH_COUNTS);
      equal(names.join(','), 'replayRejections,forgeryRejections,clockJumps,auditLost,healthRecords,auditPublished,commandReplies,unreceiptedDrops', 'the counts');
      equal(Object.values(c.snapshot()).join(','), '0,0,0,0,0,0,0,0', 'all 0 at boot');
      equal(c.count('replayRejections'), 1, 'one');
      equal(c.count('replayRejections'), 2, 'two');
      equal(c.value('replayRejections'), 2, 'read back');
      equal(c.value('forgeryRejections'), 0, 'the others untouched');
      c.addUptime(1500);
      c.addUptime(700);
      equal(c.uptimeMs, 2200, 'uptime');
      const snap = c.snapshot();
      c.count('clockJumps');
      equal(snap.clockJumps, 0, 'a snapshot does not move');
      const record = decodeHealthRecord(encodeHealthRecord({ ...SAMPLE, replayRejections: 2 ** 40 }));
      equal(record.replayRejections, 0xffffffff, 'a count above u32 saturates in the record');
    },
  },
  {
    name: 'scheduler: periodic tasks run once per due service, in order, across the 2^32 tick wrap; nextDueMs counts down',
    run() {
      const s = new Scheduler();
      const runs: string[] = [];
      const start = 0xffff_ffc0;
      s.every('a', 100, (now) => runs.push(`a@${now}`), start, 0);
      s.every('b', 300, (now) => runs.push(`b@${now}`), start);
      equal(s.nextDueMs(start), 0, 'a is due at once');
      equal(s.service(start), 1, 'a ran');
      equal(s.nextDueMs(start), 100, 'a next in 100');
      equal(s.service(start + 50), 0, 'nothing due at +50');
      const wrapped = (start + 100) % 0x1_0000_0000;
      equal(wrapped, 36, 'the tick wrapped');
      equal(s.service(wrapped), 1, 'a runs after the wrap');
      equal(s.nextDueMs(wrapped), 100, 'a next in 100 after the wrap');
      const at300 = (start + 300) % 0x1_0000_0000;
      equal(s.service(at300), 2, 'a and b at +300');
      equal(runs.join(' '), `a@${start} a@${wrapped} a@${at300} b@${at300}`, 'order');
      // A late service runs a task once, not once per missed period.
      equal(s.service((start + 1000) % 0x1_0000_0000), 2, 'late: each once');
      s.setEnabled('a', false, 0);
      equal(s.nextDueMs((start + 1000) % 0x1_0000_0000), 300, 'only b left');
      equal(s.stats().map((t) => `${t.name}:${t.runs}:${t.enabled}`).join(','), 'a:4:false,b:2:true', 'stats');
    },
  },
  {
    name: 'scheduler: a polled task runs only when it says 0, and its due time counts in nextDueMs; bad periods are refused',
    run() {
      const s = new Scheduler();
      let due: number | undefined;
      let serviced = 0;
      s.poll('link', { service: () => void serviced++, nextDueMs: () => due });
      equal(s.nextDueMs(5), undefined, 'nothing due, no timer: undefined');
      equal(s.service(5), 0, 'not serviced');
      due = 40;
      equal(s.nextDueMs(5), 40, 'its due time');
      due = 0;
      equal(s.service(6), 1, 'serviced when 0');
      equal(serviced, 1, 'once');
      throws(() => s.every('x', 0, () => undefined, 0), 'RangeError', 'period 0');
      throws(() => s.every('x', 2 ** 31, () => undefined, 0), 'RangeError', 'period 2^31');
      ok(s.stats().length === 1, 'refused tasks were not added');
    },
  },
];

export const suite: CaseSuite = { name: 'runtime health record and scheduler', cases };
