/**
 * The receipt gate (docs/spec/receipt.md) in Node and in XS: records leave
 * flash only when an authenticated receipt from the ingest covers them.
 *
 * The device (real Counter and Outbox on one simulated flash, SealedOutbox,
 * MqttSession) talks to the scripted broker of session-broker.ts through a
 * hostile gateway that can flip PUBLISH bytes, swallow PUBLISHes and inject
 * PUBLISHes captured earlier. The broker PUBACKs whatever it gets (brokers
 * do not check payloads); behind it a fake ingest authenticates every
 * PUBLISH, keeps the exact window of tools/ingest/window.ts and publishes
 * receipts (sealReceipt over its window) to the device's receipt topic.
 *
 * The two losses seen end to end are reproduced with the plain OutboxSource
 * (release on PUBACK: the invariant "every durable record is in flash or
 * accepted by the ingest" fails) and pass through the gate.
 */
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { EnvelopeError, EnvelopeSuite } from '../../firmware/security/envelope-format.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { RECEIPT_WINDOW_BITS, sealReceipt } from '../../firmware/security/receipt.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { Outbox, type OutboxOptions } from '../../firmware/storage/outbox.ts';
import { decodePacket, type MqttPacket, type PublishPacket } from '../../firmware/protocol/mqtt/index.ts';
import { MqttSession, OutboxSource, type RecordSource, type SessionEvent, type SessionOptions, type Step } from '../../firmware/protocol/mqtt-session/index.ts';
import { deviceTopic, ReceiptGate, recordCounter, SealedOutbox, TelemetryLink, type ReceiptGateEvent, type ReceiptGateOptions, type TelemetryLinkEvent } from '../../firmware/protocol/telemetry/index.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { exhaustiveTier, runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import { Rng } from '../../tools/sim/rng.ts';
import { CheckFailure, equal, ok } from '../support/check.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import { BASE_OPTIONS, FakeBroker, type BrokerConfig } from './session-broker.ts';
import { FakeClock, FakeNet, serve, xorshiftEntropy } from './client-fakes.ts';
import { testDevice, testSecret, TEST_DEVICE_ID, TEST_KEY_ID, type TestDevice } from '../support/test-device.ts';

// ---------------------------------------------------------------- fixtures

const DEVICE = TEST_DEVICE_ID;
const OTHER_DEVICE = Uint8Array.of(0xd1, 0, 0, 0, 0, 0, 0, 0x0b);
const KEY_ID = TEST_KEY_ID;
const TELEMETRY_TOPIC = deviceTopic(DEVICE, 'telemetry');
const RECEIPT_TOPIC = deviceTopic(DEVICE, 'receipt');
const TIMEOUT_MS = 1000;
const COUNTER_BLOCKS = 2;


/** Reading `i`: 8 bytes, its index in the first two. */
function reading(i: number): Uint8Array {
  const bytes = new Uint8Array(8);
  bytes[0] = i & 0xff;
  bytes[1] = (i >> 8) & 0xff;
  for (let k = 2; k < 8; k++) bytes[k] = (0x5a + i * 11 + k) & 0xff;
  return bytes;
}

/** The ingest behind the broker: authenticate, the exact window of tools/ingest/window.ts, receipts over it. */
class FakeIngest {
  readonly window = new IngestWindow();
  readonly accepted = new Set<number>();
  forged = 0;
  duplicates = 0;
  stale = 0;
  /** Counters in the order the ingest first accepted them. */
  readonly order: number[] = [];

  constructor(private readonly d: TestDevice) {}

  receive(payload: Uint8Array): void {
    let counter: number;
    try {
      counter = authenticateEnvelope(payload, { primitives: this.d.primitives, keys: this.d.lookup, deviceId: DEVICE }).counter;
    } catch (error) {
      if (!(error instanceof EnvelopeError)) throw error;
      this.forged++;
      return;
    }
    const verdict = this.window.check(counter);
    if (verdict === 'fresh') {
      this.window.accept(counter);
      this.accepted.add(counter);
      this.order.push(counter);
    } else if (verdict === 'duplicate') this.duplicates++;
    else this.stale++;
  }

  receipt(): Uint8Array {
    return sealReceipt(this.d.primitives, this.d.keys, this.window.state());
  }
}

/** Which PUBLISH the gateway lets through as it is, or changes. `sent` counts every PUBLISH it saw, from 0. */
type Gateway = (packet: MqttPacket, bytes: Uint8Array, sent: number) => Uint8Array[];

/**
 * Wires a session to the broker through the gateway; receipts the broker
 * publishes on the receipt topic go to the gate, as TelemetryLink does.
 */
class Wire {
  readonly events: (SessionEvent | ReceiptGateEvent)[] = [];
  now = 0;
  closedBySession = false;
  gateway: Gateway = (_packet, bytes) => [bytes];
  publishesSeen = 0;
  private nextReceiptId = 0;

  constructor(
    readonly session: MqttSession,
    readonly broker: FakeBroker,
    readonly gate: ReceiptGate | undefined,
  ) {}

  open(config: BrokerConfig): void {
    this.broker.reset(config);
    this.closedBySession = false;
    this.gate?.connectionOpened();
    this.apply(this.session.opened(this.now));
  }

  apply(step: Step): void {
    for (const event of step.events) {
      this.events.push(event);
      if (event.kind === 'message' && event.topic === RECEIPT_TOPIC && this.gate !== undefined) this.gate.onReceipt(event.payload);
    }
    if (step.close) this.closedBySession = true;
    const answers: Uint8Array[] = [];
    for (const bytes of step.write) {
      const packet = decodePacket(bytes, { protocolVersion: 5, maximumPacketSize: 1 << 20 });
      const out = packet.type === 'publish' ? this.gateway(packet, bytes, this.publishesSeen++) : [bytes];
      for (const b of out) answers.push(...this.broker.feed(b));
    }
    if (step.close) return;
    for (const a of answers) this.deliver(a);
  }

  deliver(bytes: Uint8Array): void {
    this.apply(this.session.received(bytes, this.now));
  }

  tick(ms: number): void {
    this.now = (this.now + ms) >>> 0;
    this.gate?.tick(this.now);
    this.apply(this.session.tick(this.now));
  }

  /** The ingest publishes a receipt to the device's receipt topic (QoS 1), then the device's loop turns once. */
  receipt(bytes: Uint8Array): void {
    this.nextReceiptId = (this.nextReceiptId % 60_000) + 1;
    this.deliver(this.broker.encode({ type: 'publish', topic: RECEIPT_TOPIC, payload: bytes, qos: 1, retain: false, dup: false, packetId: this.nextReceiptId, properties: {} }));
    this.tick(0);
  }

  close(): void {
    this.session.closed();
  }

  gateEvents<K extends ReceiptGateEvent['kind']>(kind: K): Extract<ReceiptGateEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<ReceiptGateEvent, { kind: K }> => e.kind === kind);
  }
}

/** The power-on state of one device: counter and outbox partitions of one flash. */
function partitions(flash: FlashPartition, outboxBlocks: number): { counter: PartitionView; outbox: PartitionView } {
  return { counter: new PartitionView(flash, 0, COUNTER_BLOCKS), outbox: new PartitionView(flash, COUNTER_BLOCKS, outboxBlocks) };
}

type Release = 'puback' | 'receipt';

interface Boot {
  outbox: Outbox;
  sealed: SealedOutbox;
  gate: ReceiptGate | undefined;
  wire: Wire;
}

const SESSION: SessionOptions = { ...BASE_OPTIONS, clientId: 'd10000000000000a', topic: TELEMETRY_TOPIC, maxInFlight: 8, subscriptions: [RECEIPT_TOPIC] };

/** A device on `parts`: the receipt gate, or the plain OutboxSource (release on PUBACK) to show what it loses. */
function bootDevice(parts: { counter: FlashPartition; outbox: FlashPartition }, d: TestDevice, broker: FakeBroker, release: Release, o: { reserve?: number; outbox?: OutboxOptions; gate?: Partial<ReceiptGateOptions> } = {}): Boot {
  const counter = Counter.open(parts.counter, { reserve: o.reserve ?? 4 });
  const outbox = Outbox.open(parts.outbox, o.outbox);
  const sealed = new SealedOutbox({ outbox, counter, primitives: d.primitives, keys: d.keys, suite: EnvelopeSuite.hmacSha256 });
  let gate: ReceiptGate | undefined;
  let source: RecordSource;
  if (release === 'receipt') {
    gate = new ReceiptGate({ outbox, keys: d.keys, mac: d.primitives, receiptTimeoutMs: TIMEOUT_MS, maxResends: 4, ...o.gate, onEvent: (e) => wire.events.push(e) });
    source = gate;
  } else {
    source = new OutboxSource(outbox);
  }
  const session = new MqttSession({ ...SESSION, startSeq: release === 'receipt' ? 0 : outbox.stats().ackSeq }, source);
  const wire = new Wire(session, broker, gate);
  return { outbox, sealed, gate, wire };
}

/** Counters of the records in the outbox, oldest first. */
function outboxCounters(outbox: Outbox): number[] {
  const out: number[] = [];
  for (let r = outbox.peek(); r !== undefined; r = outbox.next()) out.push(recordCounter(r.payload));
  return out;
}

/** The end-to-end promise: every durable record is still in flash or the ingest accepted it. */
function checkNothingLost(durable: readonly number[], outbox: Outbox, ingest: FakeIngest, where: string): void {
  const present = new Set(outboxCounters(outbox));
  for (const c of durable) {
    if (!present.has(c) && !ingest.accepted.has(c)) throw new CheckFailure(`${where}: record with counter ${c} left flash but the ingest never accepted it: lost`);
  }
}

/** Every record in flash can still be accepted and receipted: its counter is above the ingest's H − W (not stale). */
function checkCoverable(outbox: Outbox, ingest: FakeIngest, where: string): void {
  const oldest = outboxCounters(outbox)[0];
  if (oldest !== undefined && oldest <= ingest.window.highest - RECEIPT_WINDOW_BITS) {
    throw new CheckFailure(`${where}: the record with counter ${oldest} is in flash but below the ingest's window (H ${ingest.window.highest}): no receipt can ever cover it`);
  }
}

/** Runs the device's loop until the outbox is empty: receipts after every step, resend timeouts in between. */
function drainToEnd(boot: Boot, ingest: FakeIngest, rounds = 40): number {
  for (let round = 0; round < rounds; round++) {
    boot.wire.receipt(ingest.receipt());
    if (boot.outbox.peek() === undefined) return round;
    boot.wire.tick(TIMEOUT_MS);
    boot.wire.tick(TIMEOUT_MS);
  }
  throw new CheckFailure(`outbox not drained after ${rounds} rounds: ${outboxCounters(boot.outbox).join(',')} left`);
}

/** Expects `run` to fail with a CheckFailure matching `pattern` (the planted weakness is caught). */
function fails(run: () => void, pattern: RegExp, what: string): string {
  try {
    run();
  } catch (error) {
    ok(error instanceof CheckFailure, `${what}: expected an invariant failure, got ${String(error)}`);
    ok(pattern.test(error.message), `${what}: expected ${pattern}, got ${error.message}`);
    return error.message;
  }
  throw new CheckFailure(`${what}: passed, but it should have lost a record`);
}

function freshRig(env: CaseEnv, outboxBlocks = 6) {
  const flash = env.createFlash({ blocks: COUNTER_BLOCKS + outboxBlocks, blockLength: 1024, mode: 'plain', onBitSet: 'throw' });
  const parts = partitions(flash, outboxBlocks);
  Counter.format(parts.counter);
  const d = testDevice();
  return { flash, parts, d, broker: new FakeBroker(), ingest: new FakeIngest(d) };
}

function sessionWithoutTopic(): Omit<SessionOptions, 'topic' | 'startSeq'> {
  const { topic: _topic, startSeq: _startSeq, ...rest } = BASE_OPTIONS;
  return rest;
}

// ---------------------------------------------------------------- loss scenarios

/** Loss 1: the gateway flips a payload byte of the 2nd PUBLISH; the broker PUBACKs it, the ingest refuses it as a forgery. */
function flippedPayload(env: CaseEnv, release: Release) {
  const rig = freshRig(env);
  const boot = bootDevice(rig.parts, rig.d, rig.broker, release);
  boot.wire.gateway = (packet, bytes, sent) => {
    if (sent !== 1) return [bytes];
    const p = packet as PublishPacket;
    const flipped = p.payload.slice();
    flipped[flipped.length - 20] ^= 0x04;
    return [rig.broker.encode({ ...p, payload: flipped })];
  };
  boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
  const durable: number[] = [];
  for (let i = 0; i < 5; i++) {
    durable.push(boot.sealed.append(reading(i)).counter);
    boot.wire.tick(0);
  }
  equal(rig.ingest.forged, 1, 'the ingest refused the flipped PUBLISH as a forgery');
  equal(rig.broker.publishes().length, 5, 'the broker took (and PUBACKed) all five');
  checkNothingLost(durable, boot.outbox, rig.ingest, `release on ${release}, after the PUBACKs`);
  const rounds = drainToEnd(boot, rig.ingest);
  checkNothingLost(durable, boot.outbox, rig.ingest, `release on ${release}, at the end`);
  for (const c of durable) ok(rig.ingest.accepted.has(c), `counter ${c} accepted`);
  return { rounds, forged: rig.ingest.forged, duplicates: rig.ingest.duplicates, resendPasses: boot.gate?.stats().resendPasses ?? 0 };
}

/**
 * Loss 2: a PUBLISH captured on boot 1 is injected on boot 2 in place of the
 * device's own PUBLISH that carries the same packet id (ids restart at 1 each
 * boot); the broker's PUBACK for it acknowledges the device's record, which
 * the broker never got.
 */
function injectedOldPublish(env: CaseEnv, release: Release) {
  const rig = freshRig(env);
  const captured = new Map<number, Uint8Array>();
  const durable: number[] = [];
  // Boot 1: three records sent and (with the gate) receipted; the gateway records every PUBLISH by packet id.
  let boot = bootDevice(rig.parts, rig.d, rig.broker, release);
  boot.wire.gateway = (packet, bytes) => {
    captured.set((packet as PublishPacket).packetId ?? 0, bytes);
    return [bytes];
  };
  boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
  for (let i = 0; i < 3; i++) {
    durable.push(boot.sealed.append(reading(i)).counter);
    boot.wire.tick(0);
  }
  boot.wire.receipt(rig.ingest.receipt());
  // A clean shutdown: the acks reach flash, so boot 2 sends only new records.
  boot.outbox.flush();
  equal(boot.outbox.stats().queued, 0, 'boot 1 delivered (and, through the gate, receipted) its three');
  // Boot 2: packet ids start again at 1. The gateway swallows the first new PUBLISH and injects the boot-1 PUBLISH with its id.
  boot = bootDevice(rig.parts, rig.d, rig.broker, release);
  let injected = 0;
  boot.wire.gateway = (packet, bytes) => {
    const id = (packet as PublishPacket).packetId ?? 0;
    const old = captured.get(id);
    if (injected === 0 && old !== undefined && recordCounter((packet as PublishPacket).payload) === durable[3]) {
      injected++;
      return [old];
    }
    return [bytes];
  };
  boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
  for (let i = 3; i < 6; i++) {
    durable.push(boot.sealed.append(reading(i)).counter);
    boot.wire.tick(0);
  }
  equal(injected, 1, 'one old PUBLISH injected under a colliding packet id');
  ok(rig.ingest.duplicates >= 1, 'the ingest saw the injected old record as a duplicate');
  checkNothingLost(durable, boot.outbox, rig.ingest, `release on ${release}, after the injected PUBACK`);
  drainToEnd(boot, rig.ingest);
  checkNothingLost(durable, boot.outbox, rig.ingest, `release on ${release}, at the end`);
  for (const c of durable) ok(rig.ingest.accepted.has(c), `counter ${c} accepted`);
  return { duplicates: rig.ingest.duplicates, resendPasses: boot.gate?.stats().resendPasses ?? 0 };
}

// ---------------------------------------------------------------- a seeded hostile gateway

interface HostileTally {
  flips: number;
  swallowed: number;
  injected: number;
  duplicated: number;
  drops: number;
  reboots: number;
  replays: number;
  forgeries: number;
  heldBack: number;
  staleInjections: number;
}

/**
 * `readings` readings through a gateway that, per PUBLISH, flips a byte
 * (10 %), swallows it (4 %), puts a captured PUBLISH in its place (5 %,
 * preferring one with the same packet id) or duplicates it (4 %); receipts
 * delivered (60 %), replayed old (10 %), forged (5 %) or lost; link drops and
 * reboots (with counter jumps of 699 half the time) at random. After every
 * step: nothing lost, every record in flash still coverable, nothing dropped
 * by the full policy. Then the gateway turns honest and everything drains.
 */
function hostileRun(env: CaseEnv, seed: number, readings: number, tally: HostileTally): void {
  const rng = new Rng(seed);
  const rig = freshRig(env, 16);
  const reserve = rng.chance(0.5) ? 700 : 5;
  const durable: number[] = [];
  const captured: { id: number; bytes: Uint8Array }[] = [];
  const oldReceipts: Uint8Array[] = [];
  let hostile = true;
  const gateway: Gateway = (packet, bytes) => {
    const p = packet as PublishPacket;
    const id = p.packetId ?? 0;
    let out = [bytes];
    if (hostile) {
      const roll = rng.below(100);
      if (roll < 10) {
        const flipped = p.payload.slice();
        flipped[rng.below(flipped.length)] ^= 1 << rng.below(8);
        out = [rig.broker.encode({ ...p, payload: flipped })];
        tally.flips++;
      } else if (roll < 14) {
        out = [];
        tally.swallowed++;
      } else if (roll < 19 && captured.length > 0) {
        const same = captured.filter((c) => c.id === id && c.bytes !== bytes);
        out = [(same.length > 0 ? same[rng.below(same.length)] : captured[rng.below(captured.length)]).bytes];
        tally.injected++;
      } else if (roll < 23) {
        out = [bytes, bytes];
        tally.duplicated++;
      }
    }
    if (captured.length < 200) captured.push({ id, bytes });
    else captured[rng.below(200)] = { id, bytes };
    return out;
  };
  let boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve, gate: { maxResends: 1000 } });
  const connect = (): void => {
    boot.wire.gateway = gateway;
    boot.wire.open({ receiveMaximum: 1 + rng.below(8), autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
  };
  connect();
  const check = (where: string): void => {
    checkNothingLost(durable, boot.outbox, rig.ingest, where);
    checkCoverable(boot.outbox, rig.ingest, where);
    equal(boot.outbox.stats().dropped, 0, `${where}: nothing dropped by the full policy`);
  };
  for (let step = 0; step < readings; step++) {
    const where = `seed ${seed}, step ${step}`;
    durable.push(boot.sealed.append(reading(step)).counter);
    boot.wire.tick(0);
    const roll = rng.below(100);
    if (roll < 60) {
      const receipt = rig.ingest.receipt();
      oldReceipts.push(receipt);
      boot.wire.receipt(receipt);
    } else if (roll < 70 && oldReceipts.length > 0) {
      boot.wire.receipt(oldReceipts[rng.below(oldReceipts.length)]);
      tally.replays++;
    } else if (roll < 75) {
      const forged = rig.ingest.receipt();
      forged[rng.below(forged.length)] ^= 1 << rng.below(8);
      boot.wire.receipt(forged);
      tally.forgeries++;
    }
    if (rng.chance(0.3)) boot.wire.tick(TIMEOUT_MS);
    check(where);
    if (rng.chance(0.04)) {
      tally.heldBack += boot.gate?.stats().heldBack ?? 0;
      boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve, gate: { maxResends: 1000 } });
      tally.reboots++;
      check(`${where}, after a reboot`);
      connect();
    } else if (boot.wire.closedBySession || rng.chance(0.05)) {
      boot.wire.close();
      tally.drops++;
      connect();
    }
  }
  hostile = false;
  boot.wire.close();
  connect();
  drainToEnd(boot, rig.ingest, 80);
  tally.heldBack += boot.gate?.stats().heldBack ?? 0;
  tally.staleInjections += rig.ingest.stale;
  for (const c of durable) ok(rig.ingest.accepted.has(c), `seed ${seed}: counter ${c} never accepted`);
  check(`seed ${seed}, at the end`);
}

// ---------------------------------------------------------------- power cuts

interface CutState {
  formatted: boolean;
  taken: number;
  inFlight: number | undefined;
  /** Counters of records whose append returned (or that landed whole though cut). */
  durable: number[];
  broker: FakeBroker;
  ingest: FakeIngest;
  releasedByReceipt: number;
  landed: number;
  /** The device was inside gate.onReceipt (verifying, or writing the outbox's ack) when the boot ended. */
  inReceipt: boolean;
  cutsInReceipt: number;
}

interface CutOptions {
  mode: FlashMode;
  total: number;
  perBoot: number;
  release: Release;
  name: string;
  /** Summed over every run, so the case shows what its runs went through. */
  tally?: CutTally;
}

interface CutTally {
  /** Records released by receipts (in the boot that finished the run). */
  released: number;
  /** Appends a cut struck that landed whole. */
  landed: number;
  /** PUBLISHes the ingest refused as forgeries (the flipped one, in every run). */
  forged: number;
  /** Redeliveries the ingest refused as duplicates. */
  duplicates: number;
  /** Cuts that struck inside onReceipt (the ack a verified receipt writes). */
  cutsInReceipt: number;
}

/**
 * A short drained run: readings appended, sent through a gateway that flips
 * the 3rd PUBLISH ever, receipts after every reading, resends on the
 * timeout. Checked after every recovery: every durable record is in flash or
 * accepted by the ingest; at the end everything is accepted and the outbox
 * is empty.
 */
function cutScenario(o: CutOptions): CutScenario<CutState> {
  const d = testDevice();
  return {
    name: o.name,
    flash: { blocks: COUNTER_BLOCKS + 4, blockLength: 256, mode: o.mode, onBitSet: 'throw' },
    createState: () => ({ formatted: false, taken: 0, inFlight: undefined, durable: [], broker: new FakeBroker(), ingest: new FakeIngest(d), releasedByReceipt: 0, landed: 0, inReceipt: false, cutsInReceipt: 0 }),
    boot(flash, state) {
      const parts = partitions(flash, 4);
      if (!state.formatted) {
        Counter.format(parts.counter);
        state.formatted = true;
      }
      for (;;) if (cutBoot(parts, state, o, d)) return;
    },
  };
}

function cutBoot(parts: { counter: FlashPartition; outbox: FlashPartition }, state: CutState, o: CutOptions, d: TestDevice): boolean {
  // maxUnpersistedAcks 0: every release by a receipt is written at once, inside onReceipt, where the cuts strike it.
  const boot = bootDevice(parts, d, state.broker, o.release, { reserve: 3, outbox: { maxUnpersistedAcks: 0 } });
  if (state.inReceipt) state.cutsInReceipt++;
  state.inReceipt = false;
  const gate = boot.gate;
  if (gate !== undefined) {
    const onReceipt = gate.onReceipt.bind(gate);
    gate.onReceipt = (bytes: Uint8Array): number => {
      state.inReceipt = true;
      const released = onReceipt(bytes);
      state.inReceipt = false;
      return released;
    };
  }
  // After recovery: the append a cut struck may have landed whole, as the newest record.
  const present = outboxCounters(boot.outbox);
  const last = state.durable[state.durable.length - 1];
  for (const c of present) {
    if (state.durable.includes(c)) continue;
    ok(state.inFlight !== undefined && (last === undefined || c > last), `outbox record with counter ${c} that no append produced`);
    state.durable.push(c);
    state.landed++;
  }
  state.inFlight = undefined;
  checkNothingLost(state.durable, boot.outbox, state.ingest, 'after recovery');
  checkCoverable(boot.outbox, state.ingest, 'after recovery');
  boot.wire.gateway = (packet, bytes, sent) => {
    if (state.broker.publishes().length !== 2 || sent < 0) return [bytes];
    const p = packet as PublishPacket;
    const flipped = p.payload.slice();
    flipped[25] ^= 0x80;
    return [state.broker.encode({ ...p, payload: flipped })];
  };
  const before = boot.gate?.stats().released ?? 0;
  boot.wire.open({ receiveMaximum: 4, autoAck: (p) => (state.ingest.receive(p.payload), 0) });
  for (let inBoot = 0; state.taken < o.total; inBoot++) {
    if (inBoot === o.perBoot) return false;
    state.inFlight = state.taken;
    state.taken++;
    const record = boot.sealed.append(reading(state.taken - 1));
    state.inFlight = undefined;
    state.durable.push(record.counter);
    boot.wire.tick(0);
    boot.wire.receipt(state.ingest.receipt());
    checkNothingLost(state.durable, boot.outbox, state.ingest, 'while running');
  }
  drainToEnd(boot, state.ingest);
  state.releasedByReceipt += (boot.gate?.stats().released ?? 0) - before;
  for (const c of state.durable) ok(state.ingest.accepted.has(c), `durable record ${c} never accepted`);
  equal(state.ingest.stale, 0, 'no record arrived below the ingest window');
  if (o.tally) {
    o.tally.released += state.releasedByReceipt;
    o.tally.landed += state.landed;
    o.tally.forged += state.ingest.forged;
    o.tally.duplicates += state.ingest.duplicates;
    o.tally.cutsInReceipt += state.cutsInReceipt;
  }
  return true;
}

// ---------------------------------------------------------------- cases

export const suite: CaseSuite = {
  name: 'receipt gate',
  cases: [
    {
      name: 'drain through the broker: PUBACK marks records brokered, only receipts release them, cumulatively from the oldest',
      run(env) {
        const rig = freshRig(env);
        const boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt');
        let ingestOn = true;
        boot.wire.open({ receiveMaximum: 4, autoAck: (p) => (ingestOn && rig.ingest.receive(p.payload), 0) });
        ok(rig.broker.received.some((p) => p.type === 'subscribe' && p.subscriptions[0].topicFilter === RECEIPT_TOPIC), 'subscribed to the receipt topic after CONNACK');
        const durable: number[] = [];
        for (let i = 0; i < 20; i++) durable.push(boot.sealed.append(reading(i)).counter);
        boot.wire.tick(0);
        equal(rig.broker.publishes().length, 20, 'all twenty sent and PUBACKed');
        equal(boot.gate?.stats().brokered, 20, 'twenty brokered');
        equal(boot.outbox.stats().queued, 20, 'none released by PUBACKs');
        // A receipt that covers 0..9 and 11..19 but not 10 (the ingest lost it): released up to 9 only.
        ingestOn = false;
        const partial = new IngestWindow();
        for (const c of durable) if (c !== durable[10]) partial.accept(c);
        boot.wire.receipt(sealReceipt(rig.d.primitives, rig.d.keys, partial.state()));
        equal(boot.outbox.stats().queued, 10, 'released cumulatively up to the first record not covered');
        equal(outboxCounters(boot.outbox)[0], durable[10], 'the oldest left is the one not covered');
        ingestOn = true;
        // The timeout resends from the oldest unreceipted; covered ones are skipped.
        const sentBefore = rig.broker.publishes().length;
        boot.wire.tick(TIMEOUT_MS);
        equal(rig.broker.publishes().length - sentBefore, 1, 'only the one not covered is sent again');
        equal(recordCounter(rig.broker.publishes()[sentBefore].payload), durable[10], 'the one not covered');
        boot.wire.receipt(rig.ingest.receipt());
        equal(boot.outbox.peek(), undefined, 'everything released');
        equal(boot.wire.gateEvents('receipt').length, 2, 'two receipts made progress');
        return { ...boot.gate?.stats() };
      },
    },
    {
      // The record before it leaves flash without a receipt (policy drop here; the outbox's drop-oldest when the ring is
      // full does the same): before the fix the covered ones after it were skipped on every resend, never sent, so no
      // receipt ever came back for them and they stayed until a new record brought one (the fleet simulator's stuck drains).
      name: 'the oldest record is one the best receipt covers (an older one left without a receipt): released without waiting for another receipt',
      run(env) {
        const rig = freshRig(env);
        const boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { gate: { unreceiptedPolicy: 'drop', maxResends: 0 } });
        boot.wire.open({ receiveMaximum: 8, autoAck: () => 0 });
        const durable: number[] = [];
        for (let i = 0; i < 6; i++) durable.push(boot.sealed.append(reading(i)).counter);
        boot.wire.tick(0);
        // The ingest has 1..5 but never got 0 (lost on the way): its receipt covers 1..5, the oldest record is 0.
        const window = new IngestWindow();
        for (const c of durable.slice(1)) window.accept(c);
        boot.wire.receipt(sealReceipt(rig.d.primitives, rig.d.keys, window.state()));
        equal(boot.outbox.stats().queued, 6, 'nothing released past the record not covered');
        // Policy drop with no resends left: record 0 leaves flash unreceipted (reported); 1..5 are the ingest's already.
        boot.wire.tick(TIMEOUT_MS);
        boot.wire.tick(TIMEOUT_MS);
        ok(boot.wire.gateEvents('dropped-unreceipted').length >= 1, 'record 0 dropped unreceipted, reported');
        boot.wire.tick(0);
        equal(boot.outbox.stats().queued, 0, 'the covered records after it are released, no receipt needed');
        return { ...boot.gate?.stats() };
      },
    },
    {
      // The fleet simulator's stall (the oldest record never sent again, nothing in flight, nothing due): a resend pass
      // moved the send cursor back to the oldest record; a receipt then released it before the session came back to the
      // cursor, and the next record, handed out before the reconnect and still in flight, became the oldest counted as
      // never sent. Skipped as in flight, then PUBACKed, it waited for a receipt that could not come (its copies were
      // lost) with no timeout running, and no later connection sent it again.
      name: 'a record handed out before a reconnect that becomes the oldest while still in flight counts as sent: lost on the way, the receipt timeout sends it again',
      run(env) {
        const rig = freshRig(env);
        const boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt');
        // Connection 1: H and R go out; the broker takes H (the ingest has it); the gateway swallows R (no PUBACK).
        boot.wire.gateway = (packet, bytes, sent) => {
          if (sent === 1) return [];
          if (sent !== 2) return [bytes];
          // Connection 2's first PUBLISH, R sent again by the session: a flipped byte, the ingest refuses it.
          const p = packet as PublishPacket;
          const flipped = p.payload.slice();
          flipped[25] ^= 0x80;
          return [rig.broker.encode({ ...p, payload: flipped })];
        };
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        const h = boot.sealed.append(reading(0)).counter;
        const r = boot.sealed.append(reading(1)).counter;
        boot.wire.tick(0);
        ok(rig.ingest.accepted.has(h) && !rig.ingest.accepted.has(r), 'the ingest has H, not R');
        // Connection 2 (the link dropped): the gate resends from H; the broker allows two in flight and holds its PUBACKs.
        boot.wire.close();
        boot.wire.open({ receiveMaximum: 2, autoAck: (p) => (rig.ingest.receive(p.payload), undefined) });
        equal(rig.ingest.forged, 1, "R's copy on connection 2 was flipped");
        // The ingest's receipt releases H: R is the oldest now, still in flight.
        boot.wire.receipt(rig.ingest.receipt());
        equal(outboxCounters(boot.outbox).join(','), String(r), 'R is the oldest record left');
        // H's PUBACK first (the session looks at the source again while R is still in flight), then R's.
        boot.wire.deliver(rig.broker.release(1));
        boot.wire.deliver(rig.broker.release(0));
        const gate = boot.gate!;
        equal(gate.oldest()?.sends, 1, 'R was handed out in this boot: it counts as sent');
        ok(gate.nextDueMs(boot.wire.now) !== undefined, 'a receipt timeout runs for R');
        boot.wire.tick(TIMEOUT_MS);
        boot.wire.tick(TIMEOUT_MS);
        ok(rig.ingest.accepted.has(r), 'the timeout sent R again and the ingest took it');
        boot.wire.receipt(rig.ingest.receipt());
        equal(boot.outbox.peek(), undefined, 'everything released');
        return { ...gate.stats() };
      },
    },
    {
      name: 'loss 1, flipped payload: with release on PUBACK the record is lost; through the gate it is resent and accepted',
      run(env) {
        const lost = fails(() => flippedPayload(env, 'puback'), /left flash but the ingest never accepted it/, 'release on PUBACK');
        const gated = flippedPayload(env, 'receipt');
        ok(gated.resendPasses >= 1, 'the gate resent');
        return { ...gated, pubackLost: lost.length > 0 };
      },
    },
    {
      name: 'loss 2, an injected old PUBLISH with a colliding packet id: PUBACK frees the slot, nothing leaves flash without a receipt',
      run(env) {
        fails(() => injectedOldPublish(env, 'puback'), /left flash but the ingest never accepted it/, 'release on PUBACK');
        return injectedOldPublish(env, 'receipt');
      },
    },
    {
      name: 'hold-back across a counter jump of 4096 after a reboot: nothing newer goes out until the oldest record is receipted, so it never falls below the ingest window',
      run(env) {
        const rig = freshRig(env);
        const durable: number[] = [];
        let flipsLeft = 3;
        const hostile: Gateway = (packet, bytes) => {
          const p = packet as PublishPacket;
          // The oldest record is flipped on its first three sendings.
          if (recordCounter(p.payload) !== durable[0] || flipsLeft === 0) return [bytes];
          flipsLeft--;
          const flipped = p.payload.slice();
          flipped[22] ^= 1;
          return [rig.broker.encode({ ...p, payload: flipped })];
        };
        let boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve: 4096 });
        boot.wire.gateway = hostile;
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        for (let i = 0; i < 3; i++) {
          durable.push(boot.sealed.append(reading(i)).counter);
          boot.wire.tick(0);
        }
        boot.wire.receipt(rig.ingest.receipt());
        equal(boot.outbox.stats().queued, 3, 'the first record was refused: nothing released');
        // Reboot: the counter resumes above its reserved bound.
        boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve: 4096 });
        boot.wire.gateway = hostile;
        const next = boot.sealed.append(reading(3)).counter;
        durable.push(next);
        ok(next - durable[2] >= 4000, `counter jumped by ${next - durable[2]}`);
        for (let i = 4; i < 8; i++) durable.push(boot.sealed.append(reading(i)).counter);
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        let peakAhead = 0;
        for (let round = 0; round < 10 && boot.outbox.peek() !== undefined; round++) {
          const oldest = outboxCounters(boot.outbox)[0];
          peakAhead = Math.max(peakAhead, rig.ingest.window.highest - oldest);
          ok(rig.ingest.window.highest - oldest <= RECEIPT_WINDOW_BITS - 2, `ingest H ${rig.ingest.window.highest} ran ${rig.ingest.window.highest - oldest} ahead of the oldest record in flash ${oldest}`);
          boot.wire.receipt(rig.ingest.receipt());
          boot.wire.tick(TIMEOUT_MS);
          boot.wire.tick(TIMEOUT_MS);
        }
        equal(boot.outbox.peek(), undefined, 'drained');
        for (const c of durable) ok(rig.ingest.accepted.has(c), `counter ${c} accepted`);
        equal(rig.ingest.stale, 0, 'nothing arrived stale');
        equal(boot.wire.gateEvents('held-back').length, 1, 'held back once, reported');
        const order = rig.ingest.order;
        ok(order.indexOf(durable[0]) < order.indexOf(durable[3]), 'the oldest record was accepted before any record after the jump');
        return { jump: next - durable[2], flips: 3 - flipsLeft, peakAhead };
      },
    },
    {
      name: 'a released record whose ack is not on flash yet comes back after a reboot: the gate writes the ack before a record far ahead goes out, so it never comes back below the ingest window',
      run(env) {
        const rig = freshRig(env);
        // Boot 1: one record, never sent.
        let boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve: 4096 });
        const first = boot.sealed.append(reading(0)).counter;
        // Boot 2: the counter jumps; the first record is sent, accepted, receipted and released (its ack waits in RAM: maxUnpersistedAcks 16).
        boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve: 4096 });
        const far = boot.sealed.append(reading(1)).counter;
        ok(far - first >= RECEIPT_WINDOW_BITS, `jump ${far - first}`);
        let ingestOn = true;
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (ingestOn && rig.ingest.receive(p.payload), 0) });
        equal(rig.broker.publishes().length, 1, 'only the first record went out (hold-back)');
        const flushesBefore = boot.outbox.stats().unpersistedAcks;
        equal(flushesBefore, 0, 'nothing pending yet');
        boot.wire.receipt(rig.ingest.receipt());
        equal(rig.broker.publishes().length, 2, 'the far record went out once the first was released');
        equal(boot.gate?.stats().ackFlushes, 1, 'after the gate wrote the release to flash');
        equal(boot.outbox.stats().unpersistedAcks, 0, 'no release left in RAM only');
        equal(rig.ingest.window.highest, far, 'the ingest accepted the far record');
        // Its receipt is lost; the device reboots.
        ingestOn = false;
        boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { reserve: 4096 });
        checkCoverable(boot.outbox, rig.ingest, 'after the reboot');
        equal(outboxCounters(boot.outbox).join(','), String(far), 'only the far record is back');
        ingestOn = true;
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (ingestOn && rig.ingest.receive(p.payload), 0) });
        drainToEnd(boot, rig.ingest);
        return { jump: far - first };
      },
    },
    {
      name: 'forged receipts change nothing: wrong key id, another device, another secret, flipped tag, a forged "everything accepted"',
      run(env) {
        const rig = freshRig(env);
        const boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt');
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        for (let i = 0; i < 6; i++) boot.sealed.append(reading(i));
        boot.wire.tick(0);
        equal(rig.ingest.accepted.size, 6, 'the ingest has all six');
        const crypto = createNobleCrypto();
        const state = rig.ingest.window.state();
        const forgeries = [
          sealReceipt(rig.d.primitives, deriveDeviceKeys(crypto, testSecret(), DEVICE, KEY_ID + 1), state),
          sealReceipt(rig.d.primitives, deriveDeviceKeys(crypto, testSecret(), OTHER_DEVICE, KEY_ID), state),
          sealReceipt(rig.d.primitives, deriveDeviceKeys(crypto, testSecret(0x77), DEVICE, KEY_ID), state),
          (() => {
            const r = rig.ingest.receipt();
            r[150] ^= 0x10;
            return r;
          })(),
          new Uint8Array(156),
          new Uint8Array(3),
        ];
        const before = boot.outbox.stats();
        for (const forged of forgeries) boot.wire.receipt(forged);
        const after = boot.outbox.stats();
        equal(after.ackSeq, before.ackSeq, 'ack point unchanged');
        equal(after.queued, 6, 'all six still in flash');
        equal(boot.gate?.stats().refusedReceipts, forgeries.length, 'each refused');
        const codes = boot.wire.gateEvents('receipt-refused').map((e) => e.code).join(',');
        equal(codes, 'unknown-key,bad-tag,bad-tag,bad-tag,unsupported-version,bad-length', 'refusal codes');
        boot.wire.receipt(rig.ingest.receipt());
        equal(boot.outbox.stats().queued, 0, 'the genuine receipt releases them');
        return { refused: forgeries.length };
      },
    },
    {
      name: 'a replayed old receipt is harmless: it releases nothing new, unreleases nothing, and stays true after a reboot',
      run(env) {
        const rig = freshRig(env);
        let boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt');
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        for (let i = 0; i < 3; i++) boot.sealed.append(reading(i));
        boot.wire.tick(0);
        const old = rig.ingest.receipt();
        boot.wire.receipt(old);
        equal(boot.outbox.stats().queued, 0, 'three released');
        let ingestOn = false;
        boot.wire.close();
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (ingestOn && rig.ingest.receive(p.payload), 0) });
        for (let i = 3; i < 6; i++) boot.sealed.append(reading(i));
        boot.wire.tick(0);
        boot.wire.receipt(old);
        equal(boot.outbox.stats().queued, 3, 'the replay releases nothing of the three the ingest does not have');
        // After a reboot, the replayed receipt is still only about the first three.
        boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt');
        boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (ingestOn && rig.ingest.receive(p.payload), 0) });
        boot.wire.receipt(old);
        equal(boot.outbox.stats().queued, 3, 'still three after a reboot');
        ingestOn = true;
        boot.wire.tick(TIMEOUT_MS);
        boot.wire.tick(TIMEOUT_MS);
        const fresh = rig.ingest.receipt();
        boot.wire.receipt(fresh);
        equal(boot.outbox.stats().queued, 0, 'the fresh receipt releases them');
        boot.wire.receipt(old);
        equal(boot.outbox.stats().queued, 0, 'an old receipt after a newer one changes nothing');
        return { noProgress: boot.wire.gateEvents('receipt-no-progress').length };
      },
    },
    {
      name: 'never stuck silently: a record the ingest never accepts is reported after maxResends; kept by default, released with policy drop',
      run(env) {
        const report: Record<string, number> = {};
        for (const policy of ['keep', 'drop'] as const) {
          const rig = freshRig(env);
          const boot = bootDevice(rig.parts, rig.d, rig.broker, 'receipt', { gate: { unreceiptedPolicy: policy, maxResends: 3 } });
          let victim = -1;
          boot.wire.gateway = (packet, bytes) => {
            const p = packet as PublishPacket;
            if (recordCounter(p.payload) !== victim) return [bytes];
            const flipped = p.payload.slice();
            flipped[flipped.length - 3] ^= 2; // a tag byte
            return [rig.broker.encode({ ...p, payload: flipped })];
          };
          boot.wire.open({ receiveMaximum: 8, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
          victim = boot.sealed.append(reading(0)).counter;
          boot.sealed.append(reading(1));
          boot.wire.tick(0);
          for (let round = 0; round < 8; round++) {
            boot.wire.receipt(rig.ingest.receipt());
            boot.wire.tick(TIMEOUT_MS);
            boot.wire.tick(TIMEOUT_MS);
          }
          boot.wire.receipt(rig.ingest.receipt());
          const reported = boot.wire.gateEvents('unreceipted');
          const dropped = boot.wire.gateEvents('dropped-unreceipted');
          if (policy === 'keep') {
            ok(reported.length >= 1, 'reported as unreceipted');
            equal(reported[0].sends, 4, 'after 1 + maxResends sends');
            equal(reported[0].counter, victim, 'the right record');
            equal(dropped.length, 0, 'not dropped');
            equal(outboxCounters(boot.outbox)[0], victim, 'kept in flash');
          } else {
            equal(dropped.length, 1, 'dropped once, reported');
            equal(dropped[0].counter, victim, 'the right record');
            equal(boot.outbox.stats().queued, 0, 'released; the record behind it followed on its receipt');
          }
          report[`${policy}Reports`] = reported.length + dropped.length;
        }
        return report;
      },
    },
    {
      name: 'TelemetryLink over the client: subscribes, takes receipts from the receipt topic, resends everything unreceipted on a new connection',
      run(env) {
        const rig = freshRig(env);
        const clock = new FakeClock();
        const net = new FakeNet(clock);
        const events: TelemetryLinkEvent[] = [];
        const counter = Counter.open(rig.parts.counter, { reserve: 4 });
        const outbox = Outbox.open(rig.parts.outbox);
        const link = new TelemetryLink(
          { outbox, counter, keys: rig.d.keys, primitives: rig.d.primitives, host: 'broker.test', port: 1883, session: { ...sessionWithoutTopic(), clientId: 'd10000000000000a', maxInFlight: 4 }, receiptTimeoutMs: TIMEOUT_MS, client: { backoff: { baseMs: 10, capMs: 10 } } },
          { connector: net, clock, entropy: xorshiftEntropy(7), onEvent: (e) => events.push(e) },
        );
        equal(link.telemetryTopic, 'holdfast/d10000000000000a/telemetry', 'telemetry topic');
        equal(link.receiptTopic, 'holdfast/d10000000000000a/receipt', 'receipt topic');
        rig.broker.reset({ receiveMaximum: 4, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        link.start();
        net.last.accept(4096);
        serve(net.last, rig.broker, 4096);
        ok(rig.broker.received.some((p) => p.type === 'subscribe' && p.subscriptions[0].topicFilter === link.receiptTopic), 'SUBSCRIBE to the receipt topic');
        for (let i = 0; i < 6; i++) link.append(reading(i));
        equal(link.nextDueMs(), 0, 'an append asks for service');
        link.service();
        serve(net.last, rig.broker, 4096);
        equal(rig.ingest.accepted.size, 6, 'six accepted');
        equal(link.stats().unreceipted, 6, 'six still in flash');
        // The link drops; on the new connection everything unreceipted goes again.
        net.last.fail('gateway reset');
        clock.advance(10);
        link.service();
        rig.broker.reset({ receiveMaximum: 4, autoAck: (p) => (rig.ingest.receive(p.payload), 0) });
        net.last.accept(4096);
        serve(net.last, rig.broker, 4096);
        equal(rig.ingest.duplicates, 6, 'the six sent again, duplicates at the ingest');
        const subscribes = net.streams.map((st) => st.packets().filter((p) => p.type === 'subscribe').length);
        equal(subscribes.join(','), '1,1', 'one SUBSCRIBE to the receipt topic on each connection');
        const second = net.last.packets();
        ok(second.findIndex((p) => p.type === 'subscribe') < second.findIndex((p) => p.type === 'publish'), 'SUBSCRIBE before the first PUBLISH');
        ok(events.some((e) => e.kind === 'resend' && e.reason === 'connection'), 'resend on the new connection');
        // The ingest publishes a receipt to the receipt topic.
        net.last.deliver(rig.broker.encode({ type: 'publish', topic: link.receiptTopic, payload: rig.ingest.receipt(), qos: 1, retain: false, dup: false, packetId: 9, properties: {} }));
        serve(net.last, rig.broker, 4096);
        equal(link.stats().unreceipted, 0, 'released by the receipt');
        ok(net.last.packets().some((p) => p.type === 'puback' && p.packetId === 9), 'the receipt PUBLISH was PUBACKed');
        const receipt = events.find((e) => e.kind === 'receipt');
        ok(receipt !== undefined && receipt.kind === 'receipt' && receipt.released === 6, 'a receipt event released six');
        link.stop();
        return { ...link.stats().gate };
      },
    },
    {
      name: 'a seeded hostile gateway (flips, swallows, injected old PUBLISHes, duplicates, lost, replayed and forged receipts, link drops, reboots with counter jumps): nothing lost at any step, everything drains once it turns honest',
      run(env) {
        const tally: HostileTally = { flips: 0, swallowed: 0, injected: 0, duplicated: 0, drops: 0, reboots: 0, replays: 0, forgeries: 0, heldBack: 0, staleInjections: 0 };
        // CI: 8 seeds of 40 readings; the exhaustive tier (HOLDFAST_EXHAUSTIVE=1): 200 seeds of 80.
        const big = exhaustiveTier();
        const seeds = big ? 200 : 8;
        for (let seed = 1; seed <= seeds; seed++) hostileRun(env, seed, big ? 80 : 40, tally);
        ok(tally.flips > 0 && tally.swallowed > 0 && tally.injected > 0 && tally.duplicated > 0 && tally.reboots > 0, 'every hostile act happened');
        return { seeds, ...tally };
      },
    },
    ...(['plain', 'strict'] as const).map((mode) => ({
      name: `power cut at every flash operation of a short drained run, ${mode}, one PUBLISH flipped: every durable record stays in flash until a receipt covers it`,
      run(env: CaseEnv) {
        const tally: CutTally = { released: 0, landed: 0, forged: 0, duplicates: 0, cutsInReceipt: 0 };
        // CI: 6 readings, 3 per boot; the exhaustive tier (HOLDFAST_EXHAUSTIVE=1) 16, 4 per boot, with sampled second cuts.
        const big = exhaustiveTier();
        const scenario = cutScenario({ mode, total: big ? 16 : 6, perBoot: big ? 4 : 3, release: 'receipt', name: `receipt-gate/${mode}`, tally });
        const report = runExhaustive(scenario, runnerOptions(env));
        ok(tally.forged >= report.runs, 'the flipped PUBLISH reached the ingest in every run');
        ok(tally.released > 0, 'receipts released records');
        ok(tally.cutsInReceipt > 0, 'no cut struck the ack a receipt writes');
        return { ...report, ...tally };
      },
    })),
    {
      name: 'the power-cut checks have teeth: the same run with release on PUBACK loses the flipped record',
      run(env) {
        const scenario = cutScenario({ mode: 'plain', total: 6, perBoot: 3, release: 'puback', name: 'receipt-gate/puback' });
        let message = '';
        try {
          runExhaustive(scenario, runnerOptions(env, { saveFailureImage: () => undefined, secondCuts: 'none' }));
        } catch (error) {
          message = error instanceof Error ? error.message : String(error);
        }
        ok(/never accepted|left flash/.test(message), `release on PUBACK should lose a record, got: ${message || 'no failure'}`);
      },
    },
  ],
};
