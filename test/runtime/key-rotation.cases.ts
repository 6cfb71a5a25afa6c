/**
 * Device key rotation on the runtime (docs/spec/key-rotation.md, "On the
 * device"), in Node and XS: rotate-key persists a pending generation and
 * publishes a request signed by the old key and the new one; the authority
 * (the command key's seed) verifies it and computes the same secret; a
 * confirm-key-rotation commits once the outbox is drained, audits
 * key-rotated (role device) and restarts; the next boot seals with the new
 * key id above the old key's last counter, and its receipts release. Stale,
 * unknown, wrong-key and undrained confirmations are refused; a damaged
 * key store is the boot failure keys-unreadable. Power cuts at every flash
 * operation of a rotation (plain and strict): after every cut the device
 * seals with exactly one key the cloud holds (old until the commit landed,
 * new after), the counter never goes back, and repeating the commands
 * finishes it.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { sealReceipt } from '../../firmware/security/receipt.ts';
import { keyPrefixOf, rotationSecretFrom, verifyRotationRequest } from '../../firmware/security/key-rotation.ts';
import { ed25519PublicKeyOf, x25519WithEd25519 } from '../../firmware/security/key-ed25519.ts';
import { KeyStore } from '../../firmware/security/key-store.ts';
import { RECORD_TYPES } from '../../firmware/runtime/health-record.ts';
import type { CommandOutcome } from '../../firmware/runtime/main.ts';
import { deviceTopic } from '../../firmware/protocol/telemetry/index.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import { exhaustiveTier, runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { FakeBroker } from '../protocol/session-broker.ts';
import { serve } from '../protocol/client-fakes.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseReport, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import { auditSummary, bootDevice, FLEET_SECRET, makeFleet, provision, TOTAL_BLOCKS, BLOCK, type Device, type Fleet } from './runtime-world.ts';

const DEVICE_SEED = new Uint8Array(32).fill(0x3e);
const TELEMETRY = deviceTopic(TEST_DEVICE_ID, 'telemetry');
const RECEIPTS = deviceTopic(TEST_DEVICE_ID, 'receipt');
const NEW_KEY_ID = TEST_KEY_ID + 1;


/** The world's flash plus two blocks for hf_keys at its end. */
function keysOf(flash: FlashPartition): FlashPartition {
  return new PartitionView(flash, TOTAL_BLOCKS, 2);
}

function boot(flash: FlashPartition, fleet: Fleet, seed: Uint8Array | null = DEVICE_SEED): Device {
  return bootDevice(flash, fleet, { config: seed === null ? {} : { deviceKeySeed: seed }, extraPartitions: { hf_keys: keysOf(flash) } });
}

function freshFlash(env: CaseEnv, fleet: Fleet, mode: FlashMode = 'plain'): FlashPartition {
  const flash = env.createFlash({ blocks: TOTAL_BLOCKS + 2, blockLength: BLOCK, mode });
  provision(flash, fleet);
  KeyStore.format(keysOf(flash));
  return flash;
}

/**
 * The cloud side, small: one ingest window per key id, receipts under that
 * key, the old key refused at or above the first counter of a newer one,
 * and the rotation requests seen.
 */
class Cloud {
  readonly keys = new Map<number, DeviceKeys>();
  readonly windows = new Map<number, IngestWindow>();
  readonly accepted: { keyId: number; counter: number; type: number }[] = [];
  readonly refused: { keyId: number; counter: number }[] = [];
  readonly requests: Uint8Array[] = [];
  /** Key id → the first counter seen under it. */
  readonly firstCounter = new Map<number, number>();
  readonly broker = new FakeBroker();
  private seen = 0;
  private packetId = 1;
  private readonly primitives;

  constructor(readonly fleet: Fleet) {
    this.primitives = envelopePrimitives(fleet.crypto);
    this.keys.set(TEST_KEY_ID, deriveDeviceKeys(fleet.crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID));
  }

  connect(d: Device): void {
    this.broker.reset({ receiveMaximum: 8, autoAck: () => 0 });
    this.seen = 0;
    d.net.last.accept(8192);
    this.pump(d);
    equal(d.runtime.status().linkConnected, true, 'connected');
  }

  send(d: Device, topic: string, payload: Uint8Array): void {
    const packetId = this.packetId;
    this.packetId = (this.packetId % 60_000) + 1;
    d.net.last.deliver(this.broker.encode({ type: 'publish', topic, payload, qos: 1, retain: false, dup: false, packetId, properties: {} }));
  }

  /** Bytes both ways; every fresh record accepted (or refused by the key bound) and receipted under its key. */
  pump(d: Device, rounds = 40): void {
    for (let round = 0; round < rounds; round++) {
      serve(d.net.last, this.broker, 8192);
      d.runtime.service();
      serve(d.net.last, this.broker, 8192);
      const publishes = this.broker.publishes();
      if (publishes.length === this.seen && round > 2) return;
      const receipted = new Set<number>();
      for (let i = this.seen; i < publishes.length; i++) {
        if (this.broker.topics[i] !== TELEMETRY) continue;
        const opened = authenticateEnvelope(publishes[i].payload, { primitives: this.primitives, deviceId: TEST_DEVICE_ID, keys: (_id, keyId) => this.keys.get(keyId) });
        const newer = [...this.firstCounter.entries()].filter(([k]) => k > opened.keyId).map(([, c]) => c);
        if (newer.some((c) => opened.counter >= c)) {
          this.refused.push({ keyId: opened.keyId, counter: opened.counter });
          continue;
        }
        if (!this.firstCounter.has(opened.keyId)) this.firstCounter.set(opened.keyId, opened.counter);
        const window = this.windows.get(opened.keyId) ?? new IngestWindow();
        this.windows.set(opened.keyId, window);
        receipted.add(opened.keyId);
        if (window.check(opened.counter) !== 'fresh') continue;
        window.accept(opened.counter);
        this.accepted.push({ keyId: opened.keyId, counter: opened.counter, type: opened.payload[0] });
        if (opened.payload[0] === RECORD_TYPES.keyRotationRequest) this.requests.push(opened.payload.slice(1));
      }
      this.seen = publishes.length;
      for (const keyId of receipted) this.send(d, RECEIPTS, sealReceipt(this.primitives, this.keys.get(keyId) as DeviceKeys, (this.windows.get(keyId) as IngestWindow).state()));
    }
  }

  /** The authority's half: verify the newest request against the device's current public key, derive the new secret, hold the new keys. */
  authorise(currentPublicKey: Uint8Array): { keyId: number; prefix: number } {
    const bytes = this.requests[this.requests.length - 1];
    ok(bytes !== undefined, 'a rotation request reached the cloud');
    const request = verifyRotationRequest(this.fleet.crypto, bytes, currentPublicKey);
    const secret = rotationSecretFrom(this.fleet.crypto, x25519WithEd25519(FLEET_SECRET, request.newPublicKey), request.deviceId, request.newKeyId);
    this.keys.set(request.newKeyId, deriveDeviceKeys(this.fleet.crypto, secret, TEST_DEVICE_ID, request.newKeyId));
    return { keyId: request.newKeyId, prefix: keyPrefixOf(request.newPublicKey) };
  }
}

function rotation(outcome: CommandOutcome): string {
  const r = outcome.rotation;
  if (r === undefined) return outcome.result.status === 'refused' ? `command-refused:${outcome.result.reason}` : `no-rotation:${outcome.result.status}`;
  return r.state === 'refused' ? `refused:${r.reason}` : r.state;
}

const cases: FirmwareCase[] = [
  {
    name: 'a rotation end to end: request signed by both keys, the authority derives the same secret, commit after the drain, the next boot seals with the new key id above the old bound',
    run(env) {
      const fleet = makeFleet();
      const flash = freshFlash(env, fleet);
      const cloud = new Cloud(fleet);
      let d = boot(flash, fleet);
      equal(d.runtime.status().keyId, TEST_KEY_ID, 'provisioning key seals');
      cloud.connect(d);
      d.clock.advance(60_000); // command rate limits start spent at boot (commands.md)
      let cmd = 10;
      equal(rotation(d.runtime.handleCommand(fleet.command(cmd++, 'rotate-key', { keyId: NEW_KEY_ID + 1 }))), 'refused:stale', 'a key id that skips one');
      equal(rotation(d.runtime.handleCommand(fleet.command(cmd++, 'confirm-key-rotation', { keyId: NEW_KEY_ID, keyPrefix: 0 }))), 'refused:not-pending', 'confirm with nothing pending');
      d.clock.advance(60_000);
      const begun = d.runtime.handleCommand(fleet.command(cmd++, 'rotate-key', { keyId: NEW_KEY_ID }));
      equal(rotation(begun), 'requested', 'rotate-key');
      equal(d.runtime.status().keyPending, NEW_KEY_ID, 'pending');
      cloud.pump(d);
      const { keyId, prefix } = cloud.authorise(ed25519PublicKeyOf(DEVICE_SEED));
      equal(keyId, NEW_KEY_ID, 'new key id');
      equal(rotation(d.runtime.handleCommand(fleet.command(cmd++, 'confirm-key-rotation', { keyId, keyPrefix: (prefix + 1) >>> 0 }))), 'refused:wrong-key', 'another key prefix');
      d.clock.advance(60_000);
      // An undrained outbox: a reading not yet receipted.
      const reading = d.runtime.append(Uint8Array.of(1, 2, 3));
      ok(reading.accepted, 'reading appended');
      equal(rotation(d.runtime.handleCommand(fleet.command(cmd++, 'confirm-key-rotation', { keyId, keyPrefix: prefix }))), 'refused:not-drained', 'outbox not drained');
      cloud.pump(d);
      d.clock.advance(60_000);
      const lastOld = Math.max(...cloud.accepted.filter((a) => a.keyId === TEST_KEY_ID).map((a) => a.counter));
      const committed = d.runtime.handleCommand(fleet.command(cmd++, 'confirm-key-rotation', { keyId, keyPrefix: prefix }));
      equal(rotation(committed), 'committed', 'confirm');
      const since = committed.rotation?.state === 'committed' ? committed.rotation.sinceCounter : -1;
      ok(since > lastOld, `since ${since} above the old key's last counter ${lastOld}`);
      equal(d.runtime.restartPending(), 'key-rotated', 'restart scheduled');
      const after = d.runtime.append(Uint8Array.of(4));
      equal(after.accepted, false, 'nothing sealed after the commit in this boot');
      // Next boot: the new generation seals.
      d = boot(flash, fleet);
      equal(d.runtime.status().keyId, NEW_KEY_ID, 'new key seals');
      equal(d.runtime.status().keyPending, null, 'nothing pending');
      equal(d.runtime.status().failures.length, 0, 'no failure');
      cloud.connect(d);
      ok(d.runtime.append(Uint8Array.of(9)).accepted, 'reading under the new key');
      cloud.pump(d);
      const fresh = cloud.accepted.filter((a) => a.keyId === NEW_KEY_ID);
      ok(fresh.length >= 2, `records under the new key (${fresh.length})`);
      ok(fresh.every((a) => a.counter >= since), 'every new-key record at or above since');
      equal(d.runtime.outboxStats()?.queued, 0, 'new-key receipts release the outbox');
      equal(cloud.refused.length, 0, 'nothing refused');
      ok(auditSummary(flash, fleet).includes('key-rotated'), 'audited key-rotated');
      // A second rotation is signed by the stored generation's key (a new boot: its rate limits start spent).
      d.clock.advance(60_000);
      cmd += 1_000_000; // above the ceiling the replay store persisted in the boot before
      equal(rotation(d.runtime.handleCommand(fleet.command(cmd++, 'rotate-key', { keyId: NEW_KEY_ID + 1 }))), 'requested', 'second rotate-key');
      cloud.pump(d);
      const current = cloud.requests[cloud.requests.length - 1];
      equal(cloud.authorise(current.slice(32, 64)).keyId, NEW_KEY_ID + 1, 'second request verifies under the first new key');
      return { since, newRecords: fresh.length };
    },
  },
  {
    name: 'refusals: rotation without a provisioned device seed is unavailable; in safe mode the key commands are refused',
    run(env) {
      const fleet = makeFleet();
      const flash = freshFlash(env, fleet);
      let d = boot(flash, fleet, null);
      d.clock.advance(60_000);
      equal(rotation(d.runtime.handleCommand(fleet.command(1, 'rotate-key', { keyId: NEW_KEY_ID }))), 'refused:unavailable', 'no seed');
      d = boot(flash, fleet);
      d.clock.advance(60_000);
      d.runtime.setSafeMode(true, 'console');
      equal(rotation(d.runtime.handleCommand(fleet.command(1_000_000, 'rotate-key', { keyId: NEW_KEY_ID }))), 'command-refused:safe-mode', 'safe mode');
    },
  },
  {
    name: 'a damaged key store is the boot failure keys-unreadable: safe mode (storage), the provisioning key seals, rotation unavailable',
    run(env) {
      const fleet = makeFleet();
      const flash = freshFlash(env, fleet);
      const keys = keysOf(flash);
      const junk = new Uint8Array(BLOCK);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 73 + 1) & 0xff;
      keys.write(0, junk);
      const d = boot(flash, fleet);
      const s = d.runtime.status();
      ok(s.failures.some((f) => f.code === 'keys-unreadable' && f.cause === 'damaged'), s.failures.map((f) => `${f.code}/${f.cause}`).join(','));
      equal(s.mode, 'safe', 'safe mode');
      equal(s.keyId, TEST_KEY_ID, 'provisioning key');
    },
  },
  ...(['plain', 'strict'] as const).map(
    (mode): FirmwareCase => ({
      name: `power cuts at every flash operation of a rotation on the runtime (${mode}): one working key the cloud holds after every cut, the counter never goes back, repeating the commands finishes it`,
      run: (env): CaseReport => {
        // XS is slow at this (every run boots the runtime several times and signs): its strict run and the second
        // tear are in the exhaustive tier (HOLDFAST_EXHAUSTIVE=1), as the console's and the roll-back's; Node runs both always.
        if (env.engine === 'xs' && mode === 'strict' && !exhaustiveTier()) return { xsStrictInExhaustiveTierOnly: true };
        const tears = env.engine === 'xs' && !exhaustiveTier() ? { tears: ['prefix'] as const } : {};
        return { ...runExhaustive(runtimeScenario(mode), runnerOptions(env, { variants: 2, ...tears })) };
      },
    }),
  ),
];

interface RuntimeCutState {
  provisioned: boolean;
  committed: boolean;
  command: number;
  /** Highest counter value the device is known to have used (a record seen, a value taken). */
  highest: number;
  cloud: Cloud | undefined;
}

function runtimeScenario(mode: FlashMode): CutScenario<RuntimeCutState> {
  const fleet = makeFleet();
  return {
    name: `runtime/key-rotation/${mode}`,
    flash: { blocks: TOTAL_BLOCKS + 2, blockLength: BLOCK, mode },
    createState: () => ({ provisioned: false, committed: false, command: 100, highest: 0, cloud: undefined }),
    boot(flash, state) {
      if (!state.provisioned) {
        provision(flash, fleet);
        KeyStore.format(keysOf(flash));
        state.provisioned = true;
        state.cloud = new Cloud(fleet);
      }
      const cloud = state.cloud as Cloud;
      // Far above any ceiling the replay store persisted before a cut (a command at or below it is stale).
      state.command += 1_000_000;
      const d = boot(flash, fleet);
      const s = d.runtime.status();
      equal(s.failures.length, 0, `no boot failure: ${s.failures.map((f) => `${f.code}/${f.cause}`).join(',')}`);
      ok(cloud.keys.has(s.keyId), `the device seals with key ${s.keyId}, which the cloud does not hold`);
      if (state.committed) equal(s.keyId, NEW_KEY_ID, 'a committed rotation went back');
      const value = d.runtime.counterValues().next();
      ok(value > state.highest, `the counter went back: ${value} after ${state.highest}`);
      state.highest = value;
      cloud.connect(d);
      if (s.keyId === NEW_KEY_ID) {
        state.committed = true;
        ok(d.runtime.append(Uint8Array.of(7)).accepted, 'a reading under the new key');
        cloud.pump(d);
        equal(cloud.refused.length, 0, 'nothing the device sealed is refused by the key bound');
        return;
      }
      d.clock.advance(60_000);
      const begun = d.runtime.handleCommand(fleet.command(state.command++, 'rotate-key', { keyId: NEW_KEY_ID }));
      equal(rotation(begun), 'requested', 'rotate-key');
      cloud.pump(d);
      const { keyId, prefix } = cloud.authorise(ed25519PublicKeyOf(DEVICE_SEED));
      const committed = d.runtime.handleCommand(fleet.command(state.command++, 'confirm-key-rotation', { keyId, keyPrefix: prefix }));
      equal(rotation(committed), 'committed', 'confirm');
      state.committed = true;
      if (committed.rotation?.state === 'committed') state.highest = Math.max(state.highest, committed.rotation.sinceCounter);
      const again = boot(flash, fleet);
      equal(again.runtime.status().keyId, NEW_KEY_ID, 'new key after the restart');
      cloud.connect(again);
      ok(again.runtime.append(Uint8Array.of(8)).accepted, 'a reading under the new key');
      cloud.pump(again);
      equal(cloud.refused.length, 0, 'nothing refused');
    },
  };
}

export const suite: CaseSuite = { name: 'key rotation on the device', cases };
