/**
 * The runtime's inbox (firmware/runtime/inbox.ts; docs/spec/boot-sequence.md,
 * "Messages"), in Node and XS: arrival order across channels, the count and
 * byte bounds (a full inbox drops and counts, per channel), copies of the
 * payloads, a ring that wraps; and on a whole runtime: command messages are
 * queued in the socket callback and handled at the scheduler's turn, in
 * arrival order, and a flood beyond the bound is dropped, counted in the
 * status, the console's status and the log, while memory stays bounded.
 */
import { Inbox } from '../../firmware/runtime/inbox.ts';
import { decodeCommandReply, COMMAND_REPLY_TYPE } from '../../firmware/runtime/command-reply.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { bootDevice, readAudit, flashOptions, makeFleet, provision, type Device, type Fleet, type BootOptions } from './runtime-world.ts';
import { COMMAND_TOPIC, connect, pump, telemetryRecords } from './mqtt-link-support.ts';
import { attachConsole } from './console-world.ts';
import type { FakeBroker } from '../protocol/session-broker.ts';

const AFTER_BOOT_MS = 61_000;

function booted(env: CaseEnv, fleet: Fleet, options: BootOptions = {}): { d: Device; broker: FakeBroker; flash: FlashPartition } {
  const flash = env.createFlash(flashOptions('plain'));
  provision(flash, fleet);
  const d = bootDevice(flash, fleet, options);
  d.clock.advance(AFTER_BOOT_MS);
  d.runtime.service();
  d.clock.advance(1_000);
  d.runtime.service();
  return { d, broker: connect(d), flash };
}

/** `payloads` as QoS 1 PUBLISHes on the command topic, all in one chunk from the socket (one callback). */
function deliverAtOnce(d: Device, broker: FakeBroker, payloads: readonly Uint8Array[], firstPacketId: number): void {
  const packets = payloads.map((payload, i) => broker.encode({ type: 'publish', topic: COMMAND_TOPIC, payload, qos: 1, retain: false, dup: false, packetId: firstPacketId + i, properties: {} }));
  const total = packets.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of packets) {
    bytes.set(p, at);
    at += p.length;
  }
  d.net.last.deliver(bytes);
}

function replyCounters(broker: FakeBroker, fleet: Fleet): number[] {
  return telemetryRecords(broker, fleet.crypto)
    .filter((r) => r[0] === COMMAND_REPLY_TYPE)
    .map((r) => decodeCommandReply(r).counter);
}

const cases: FirmwareCase[] = [
  {
    name: 'inbox: arrival order across channels; at most capacity messages and maxBytes bytes, a message that does not fit dropped and counted per channel; payloads copied; the ring wraps',
    run() {
      const inbox = new Inbox({ capacity: 3, maxBytes: 10 });
      const a = Uint8Array.of(1, 2, 3);
      ok(inbox.push('command', a), 'a');
      ok(inbox.push('update', Uint8Array.of(4, 5, 6)), 'b');
      a[0] = 99;
      ok(!inbox.push('update', new Uint8Array(5)), 'over the byte bound: dropped');
      ok(inbox.push('command', Uint8Array.of(7, 8, 9, 10)), 'c: exactly 10 bytes');
      ok(!inbox.push('command', new Uint8Array(0)), 'over the count bound: dropped');
      const s = inbox.stats();
      equal(`${s.queued}:${s.queuedBytes}:${s.droppedCommands}:${s.droppedUpdates}:${s.highWater}`, '3:10:1:1:3', 'bounded, drops by channel');
      equal(inbox.dropped(), 2, 'dropped in all');
      const first = inbox.shift();
      equal(`${first?.channel}:${Array.from(first?.payload ?? []).join(',')}`, 'command:1,2,3', 'the oldest first, a copy taken at arrival');
      equal(inbox.shift()?.channel, 'update', 'then the update');
      equal(Array.from(inbox.shift()?.payload ?? []).join(','), '7,8,9,10', 'then the third');
      equal(inbox.shift(), undefined, 'empty');
      // Around the ring many times: never more than capacity, order kept.
      let next = 0;
      let expect = 0;
      for (let round = 0; round < 50; round++) {
        while (inbox.push(round % 2 === 0 ? 'command' : 'update', Uint8Array.of(next & 0xff))) next++;
        ok(inbox.length <= 3, 'never above capacity');
        const n = 1 + (round % 3);
        for (let i = 0; i < n && inbox.length > 0; i++) equal(inbox.shift()?.payload[0], expect++ & 0xff, 'in order');
      }
      equal(inbox.stats().accepted, inbox.stats().handled + inbox.length, 'every accepted message handed out or still queued');
      throws(() => new Inbox({ capacity: 0 }), 'RangeError', 'capacity 0 refused');
      throws(() => new Inbox({ maxBytes: 0 }), 'RangeError', 'maxBytes 0 refused');
    },
  },
  {
    name: 'runtime: command messages are queued in the socket callback (nothing applied, nothing written there) and handled at the scheduler\'s turn, in arrival order, each answered in telemetry',
    run(env) {
      const fleet = makeFleet();
      const { d, broker } = booted(env, fleet);
      const commands = [11, 12, 13].map((c, i) => fleet.command(c, 'set-output', { target: i, value: 1 }));
      const repliesBefore = d.runtime.status().commandReplies;
      deliverAtOnce(d, broker, commands, 100);
      equal(d.actuator.applied.length, 0, 'nothing applied in the callback');
      equal(d.runtime.status().commandReplies, repliesBefore, 'nothing answered in the callback');
      equal(d.runtime.inboxStats().queued, 3, 'three queued');
      equal(d.runtime.nextDueMs(), 0, 'the scheduler is due now');
      d.runtime.service();
      equal(d.runtime.inboxStats().queued, 0, 'handled at the turn');
      equal(d.actuator.applied.map((a) => a.counter).join(','), '11,12,13', 'applied in arrival order');
      pump(d, broker);
      equal(replyCounters(broker, fleet).join(','), '11,12,13', 'answered in arrival order');
      const tasks = d.runtime.tasks().map((t) => t.name);
      ok(tasks.indexOf('inbox') >= 0 && tasks.indexOf('inbox') < tasks.indexOf('link'), `the inbox runs before the link (its answers go out in the same turn): ${tasks.join(',')}`);
      return { handled: d.runtime.inboxStats().handled };
    },
  },
  {
    name: 'runtime: a flood beyond the bound is dropped and counted (status, console status, one log line per power of two), memory stays bounded; the messages kept are handled in order and the dropped ones are not answered',
    run(env) {
      const fleet = makeFleet();
      const { d, broker, flash } = booted(env, fleet, { config: { inbox: { capacity: 2 } } });
      const commands = [21, 22, 23, 24, 25, 26].map((c) => fleet.command(c, 'set-output', { target: 3, value: c % 2 }));
      deliverAtOnce(d, broker, commands, 200);
      const s = d.runtime.inboxStats();
      equal(`${s.queued}:${s.droppedCommands}:${s.highWater}`, '2:4:2', 'two kept, four dropped');
      equal(d.runtime.status().inboxDropped, 4, 'the status counts them');
      const drops = d.logs.filter((l) => l.startsWith('warn runtime: inbox full'));
      equal(drops.length, 3, `logged at the 1st, 2nd and 4th drop: ${drops.join(' | ')}`);
      // Audited too, at the same drops: records-dropped (store inbox, count since the last entry, total this boot).
      const audited = readAudit(flash, fleet)
        .records.map((r) => r.event)
        .filter((e) => e?.kind === 'records-dropped')
        .map((e) => (e?.kind === 'records-dropped' ? `${e.store}/${e.count}/${e.total}` : ''));
      equal(audited.join(','), 'inbox/1/1,inbox/1/2,inbox/2/4', 'audited at the 1st, 2nd and 4th drop');
      pump(d, broker);
      equal(d.actuator.applied.map((a) => a.counter).join(','), '21,22', 'the first two applied, in order');
      equal(replyCounters(broker, fleet).join(','), '21,22', 'only those answered (the cloud resends the others)');
      const c = attachConsole(d.runtime, fleet, { clock: d.clock });
      equal(c.send('status').reply.fields['inbox-dropped'], '4', 'the console shows the drops');
      // The cloud resends; now they fit.
      deliverAtOnce(d, broker, commands.slice(2, 4), 300);
      pump(d, broker);
      equal(d.actuator.applied.map((a) => a.counter).join(','), '21,22,23,24', 'resent commands applied');
      return { dropped: s.droppedCommands };
    },
  },
];

export const suite: CaseSuite = { name: 'runtime inbox', cases };
