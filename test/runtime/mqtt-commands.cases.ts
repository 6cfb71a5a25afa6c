/**
 * Commands over MQTT (docs/spec/device-topics.md, docs/spec/commands.md),
 * in Node and XS: the runtime subscribes to its command topic, decides each
 * envelope that arrives there, and answers it with a command-reply record
 * (type 0x04) sealed into its telemetry stream: applied once, a duplicate
 * answered 'already-applied' (also after a reboot, when the first answer
 * may never have left), a forgery refused, audited and not answered, a
 * replayed diagnostic command refused and audited, and safe mode refusing
 * physical commands.
 */
import { decodeCommandReply, COMMAND_REPLY_TYPE, CommandReplyError, encodeCommandReply, type CommandReply } from '../../firmware/runtime/command-reply.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, provision, type Device, type Fleet } from './runtime-world.ts';
import { COMMAND_TOPIC, connect, deliver, subscribed, telemetryRecords } from './mqtt-link-support.ts';
import type { FakeBroker } from '../protocol/session-broker.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { exhaustiveTier, runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import type { CaseReport } from '../support/cases.ts';

const AFTER_BOOT_MS = 61_000;

function fresh(env: CaseEnv, fleet: Fleet): FlashPartition {
  const flash = env.createFlash(flashOptions('plain'));
  provision(flash, fleet);
  return flash;
}

/** The command replies among the device's published records, decoded, in order. */
function replies(broker: FakeBroker, fleet: Fleet): CommandReply[] {
  return telemetryRecords(broker, fleet.crypto)
    .filter((r) => r[0] === COMMAND_REPLY_TYPE)
    .map((r) => decodeCommandReply(r));
}

function describe(r: CommandReply): string {
  return `${r.status}${r.reason === null ? '' : `:${r.reason}`}${r.mode === 'unchanged' ? '' : `/${r.mode}`}@${r.counter}`;
}

function digestPrefix(fleet: Fleet, envelope: Uint8Array): string {
  const h = fleet.crypto.createSha256();
  h.update(envelope);
  return Array.from(h.digest().slice(0, 8)).join(',');
}

function booted(env: CaseEnv, fleet: Fleet, flash: FlashPartition): { d: Device; broker: FakeBroker } {
  const d = bootDevice(flash, fleet);
  // The rate limiter starts spent at boot: a minute passes before any connection is served (the first attempt times out, the client retries).
  d.clock.advance(AFTER_BOOT_MS);
  d.runtime.service();
  d.clock.advance(1_000);
  d.runtime.service();
  return { d, broker: connect(d) };
}

const cases: FirmwareCase[] = [
  {
    name: 'the link subscribes to the command topic after the receipt topic; a signed physical command on it is applied once and answered "applied" in telemetry',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      const { d, broker } = booted(env, fleet, flash);
      const topics = subscribed(broker);
      ok(topics.includes(COMMAND_TOPIC), `subscribed to ${COMMAND_TOPIC}: ${topics.join(' ')}`);
      ok(topics.indexOf(COMMAND_TOPIC) > topics.findIndex((t) => t.endsWith('/receipt')), 'after the receipt topic');
      const command = fleet.command(5, 'set-output', { target: 2, value: 1 });
      deliver(d, broker, COMMAND_TOPIC, command);
      equal(d.actuator.applied.length, 1, 'applied once');
      equal(d.actuator.applied[0].counter, 5, 'by its counter');
      const got = replies(broker, fleet);
      equal(got.map(describe).join(' '), 'applied@5', 'the answer');
      equal(Array.from(got[0].envelopeDigest).join(','), digestPrefix(fleet, command), 'names the envelope by its digest');
      equal(d.runtime.status().commandReplies, 1, 'one reply appended');
      return { replies: got.length };
    },
  },
  {
    name: 'a duplicate is answered "already applied" and changes nothing, also after a reboot that came before the first answer left the device',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      const first = booted(env, fleet, flash);
      const command = fleet.command(7, 'set-output', { target: 1, value: 1 });
      // The answer is appended but the link is cut before anything is published: the PUBLISH is never served.
      first.d.net.last.deliver(first.broker.encode({ type: 'publish', topic: COMMAND_TOPIC, payload: command, qos: 1, retain: false, dup: false, packetId: 9, properties: {} }));
      equal(first.d.actuator.applied.length, 0, 'queued in the socket callback, not handled there');
      // The scheduler's turn handles it; the answer's PUBLISH is written to the socket but never served to the broker.
      first.d.runtime.service();
      equal(first.d.actuator.applied.length, 1, 'applied in the first boot');
      equal(first.d.runtime.status().commandReplies, 1, 'answered (durable in the outbox)');
      // Reboot over the same flash: the broker redelivers the command.
      const { d, broker } = booted(env, fleet, flash);
      deliver(d, broker, COMMAND_TOPIC, command);
      deliver(d, broker, COMMAND_TOPIC, command);
      equal(d.actuator.applied.length, 0, 'not applied again after the reboot');
      const got = replies(broker, fleet).map(describe);
      // The first boot's answer leaves from the outbox after the reboot, then both duplicates are answered.
      equal(got.join(' '), 'applied@7 already-applied@7 already-applied@7', 'answers');
      return { answers: got.length };
    },
  },
  {
    name: 'a forged command is refused, audited (forgery-rejected) and not answered; a replayed diagnostic command is refused, audited (replay-rejected) and answered',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      const { d, broker } = booted(env, fleet, flash);
      const forged = fleet.command(11, 'set-output', { target: 0, value: 1 });
      forged[forged.length - 1] ^= 0x01;
      deliver(d, broker, COMMAND_TOPIC, forged);
      const forOther = fleet.command(12, 'set-output', { target: 0, value: 1 }, Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0e));
      deliver(d, broker, COMMAND_TOPIC, forOther);
      equal(d.actuator.applied.length, 0, 'nothing applied');
      equal(replies(broker, fleet).length, 0, 'no answer to an envelope that does not open');
      equal(d.runtime.status().forgeryRejections, 2, 'counted');
      const report = fleet.command(20, 'report-status', { section: 0 });
      deliver(d, broker, COMMAND_TOPIC, report);
      deliver(d, broker, COMMAND_TOPIC, report);
      // An older counter inside the window, never seen, is fresh (reordering is allowed); its replay is not.
      const older = fleet.command(19, 'report-status', { section: 1 });
      deliver(d, broker, COMMAND_TOPIC, older);
      deliver(d, broker, COMMAND_TOPIC, older);
      const got = replies(broker, fleet).map(describe);
      equal(got.join(' '), 'accepted@20 refused:replay@20 accepted@19 refused:replay@19', 'answers');
      equal(d.runtime.status().replayRejections, 2, 'replays counted');
      const audit = auditSummary(flash, fleet).filter((k) => k.startsWith('forgery') || k.startsWith('replay'));
      equal(audit.join(' '), 'forgery-rejected forgery-rejected replay-rejected replay-rejected', 'audited');
      return { answers: got.length };
    },
  },
  {
    name: 'safe mode over MQTT: enter-safe-mode is answered accepted/entered, then a physical command is refused "safe-mode" (nothing applied), a diagnostic one accepted',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      const { d, broker } = booted(env, fleet, flash);
      deliver(d, broker, COMMAND_TOPIC, fleet.command(30, 'enter-safe-mode'));
      equal(d.runtime.status().mode, 'safe', 'safe mode');
      deliver(d, broker, COMMAND_TOPIC, fleet.command(31, 'set-output', { target: 3, value: 1 }));
      deliver(d, broker, COMMAND_TOPIC, fleet.command(32, 'report-status', { section: 2 }));
      equal(d.actuator.applied.length, 0, 'no physical effect in safe mode');
      const got = replies(broker, fleet).map(describe);
      equal(got.join(' '), 'accepted/entered@30 refused:safe-mode@31 accepted@32', 'answers');
      ok(auditSummary(flash, fleet).includes('safe-mode-entered:command'), 'audited');
      return { answers: got.length };
    },
  },
  {
    name: 'command reply codec: every status, reason and mode round-trips; wrong type, newer format, bad codes and wrong lengths are refused with a code',
    run() {
      const digest = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
      const samples: CommandReply[] = [
        { status: 'applied', reason: null, mode: 'unchanged', counter: 1, envelopeDigest: digest },
        { status: 'accepted', reason: null, mode: 'entered', counter: 2 ** 53 - 1, envelopeDigest: digest },
        { status: 'already-applied', reason: null, mode: 'unchanged', counter: 0x1_0000_0001, envelopeDigest: digest },
        { status: 'refused', reason: 'outcome-unknown', mode: 'unchanged', counter: 9, envelopeDigest: digest },
        { status: 'refused', reason: 'journal-unavailable', mode: 'unchanged', counter: 9, envelopeDigest: digest },
        { status: 'unavailable', reason: 'journal-missing', mode: 'unchanged', counter: 0, envelopeDigest: digest },
        { status: 'accepted', reason: null, mode: 'leave-refused', counter: 3, envelopeDigest: digest },
      ];
      for (const s of samples) {
        const bytes = encodeCommandReply(s);
        equal(bytes.length, 22, 'length');
        const back = decodeCommandReply(bytes);
        equal(describe(back), describe(s), 'round trip');
        equal(Array.from(back.envelopeDigest).join(','), '1,2,3,4,5,6,7,8', 'digest');
      }
      const good = encodeCommandReply(samples[0]);
      const refuse = (mutate: (b: Uint8Array) => Uint8Array, code: string): void => {
        const error = throws(() => decodeCommandReply(mutate(good.slice())), 'CommandReplyError', code) as CommandReplyError;
        equal(error.code, code, 'code');
      };
      refuse((b) => ((b[0] = 0x02), b), 'wrong-type');
      refuse((b) => ((b[1] = 2), b), 'format-too-new');
      refuse((b) => ((b[1] = 0), b), 'bad-version');
      refuse((b) => b.subarray(0, 21), 'truncated');
      refuse((b) => b.subarray(0, 1), 'truncated');
      refuse((b) => ((b[2] = 9), b), 'bad-field');
      refuse((b) => ((b[3] = 1), b), 'bad-field');
      refuse((b) => ((b[4] = 4), b), 'bad-field');
      refuse((b) => ((b[5] = 1), b), 'bad-field');
      refuse((b) => ((b[13] = 0x01), b), 'bad-field');
      const refusedNoReason = encodeCommandReply(samples[3]);
      refusedNoReason[3] = 0;
      throws(() => decodeCommandReply(refusedNoReason), 'CommandReplyError', 'a refusal without a reason');
      throws(() => encodeCommandReply({ ...samples[0], reason: 'replay' }), 'RangeError', 'an applied reply has no reason');
      throws(() => encodeCommandReply({ ...samples[0], counter: -1 }), 'RangeError', 'negative counter');
    },
  },
];

interface CutState {
  provisioned: boolean;
  /** Counters the actuator applied, over all boots (a second application fails at once). */
  applied: number[];
  /** Every answer the cloud received, over all boots ("status@counter"). */
  answers: string[];
  done: boolean;
}

/**
 * Each boot delivers the same three commands over MQTT (a physical one, its duplicate, a diagnostic one), as a cloud
 * that has not seen their answers would, until a boot completes. Cut at every flash operation (journal, replay store,
 * outbox, counter, audit): the physical command is applied at most once over all boots, every answer is one the
 * command's state allows, and in the end both commands have been answered.
 */
function mqttCommandScenario(mode: FlashMode): CutScenario<CutState> {
  const fleet = makeFleet();
  const physical = fleet.command(1_000_000, 'set-output', { target: 4, value: 1 });
  return {
    name: `runtime/mqtt-commands/${mode}`,
    flash: flashOptions(mode),
    createState: () => ({ provisioned: false, applied: [], answers: [], done: false }),
    boot(flash, state, bootIndex) {
      if (!state.provisioned) {
        provision(flash, fleet);
        state.provisioned = true;
      }
      const d = bootDevice(flash, fleet, {
        onApply: (counter) => {
          ok(!state.applied.includes(counter), `command ${counter} applied twice (boot ${bootIndex})`);
          state.applied.push(counter);
        },
      });
      d.clock.advance(AFTER_BOOT_MS);
      d.runtime.service();
      d.clock.advance(1_000);
      d.runtime.service();
      const broker = connect(d);
      // Counters above every earlier boot's replay floor for the diagnostic command (a fresh one each boot).
      const diagnostic = fleet.command(2_000_000 + bootIndex * 1_000, 'report-status', { section: 0 });
      for (const envelope of [physical, physical, diagnostic]) deliver(d, broker, COMMAND_TOPIC, envelope);
      for (const r of replies(broker, fleet)) {
        const answer = describe(r);
        if (r.counter === 1_000_000) ok(['applied@1000000', 'already-applied@1000000', 'refused:outcome-unknown@1000000', 'refused:replay@1000000', 'refused:stale@1000000'].includes(answer), `answer ${answer}`);
        if (answer === 'applied@1000000') ok(state.applied.includes(1_000_000), 'answered applied: it was applied');
        if (answer === 'refused:replay@1000000' || answer === 'refused:stale@1000000') ok(!state.applied.includes(1_000_000), `${answer} only for a command never applied`);
        state.answers.push(answer);
      }
      ok(state.answers.some((a) => a.endsWith('@1000000')), 'the physical command was answered');
      ok(state.answers.some((a) => a.startsWith('accepted@2')), 'the diagnostic command was answered');
      state.done = true;
    },
  };
}

cases.push(
  ...(['plain', 'strict'] as const).map(
    (mode): FirmwareCase => ({
      name: `power cuts at every flash operation while commands arrive over MQTT and are answered (${mode}): applied at most once over all boots, every answer allowed by the command's state, both answered in the end`,
      run(env): CaseReport {
        const report: CaseReport = { ...runExhaustive(mqttCommandScenario(mode), runnerOptions(env, { variants: exhaustiveTier() ? 4 : 1, secondCuts: exhaustiveTier() ? { sample: 4 } : 'none' })) };
        return report;
      },
    }),
  ),
);

export const suite: CaseSuite = { name: 'runtime commands over MQTT', cases };
