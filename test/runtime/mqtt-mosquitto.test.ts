/**
 * End to end over Debian's mosquitto (MQTT 5, password accounts, the ACL
 * tools/net/mosquitto.ts generates), in Node: the runtime on simulated
 * flash with real sockets; a "cloud" account (mqtt npm client) that reads
 * every device's telemetry, sends receipts (IngestWindow), publishes a
 * signed command, and runs the update responder of
 * tools/update-server/responder.ts (attachUpdateResponder).
 *
 * Asserted: the command is applied once and its reply record arrives at the
 * cloud; another device's account subscribed to this device's command
 * topic receives nothing (the ACL); the manifest and every chunk travel
 * through mosquitto and the device restarts with the update staged.
 * Without mosquitto the test skips, except under CI, where it fails.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { StreamConnector } from '../../firmware/hal/stream.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { sealReceipt } from '../../firmware/security/receipt.ts';
import { deviceTopic } from '../../firmware/protocol/telemetry/index.ts';
import { PARTITION_LABELS } from '../../firmware/runtime/boot.ts';
import { COMMAND_REPLY_TYPE, decodeCommandReply } from '../../firmware/runtime/command-reply.ts';
import { startRuntime, type Runtime, type RuntimeHal } from '../../firmware/runtime/main.ts';
import { findMosquitto, findMosquittoPasswd, requireComponents, skipUnless, sleep } from '../../tools/net/common.ts';
import { startMosquitto, type MosquittoBroker } from '../../tools/net/mosquitto.ts';
import { NodeStreamConnector } from '../../tools/net/node-stream.ts';
import { SimBootloader } from '../../tools/sim/bootloader.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import { attachUpdateResponder, createUpdateResponder } from '../../tools/update-server/responder.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { makeWorld, WATCHDOG_MS } from '../update/agent-world.ts';
import { deviceConfig, LAYOUT, makeFleet, partsOf, RecordingActuator } from './runtime-world.ts';
import { JumpClock, networkHal } from './net-hal.ts';
import { combinedFlashOptions, provisionAll, split } from './mqtt-update-world.ts';

const needs = [findMosquitto(), findMosquittoPasswd()];
const skip = skipUnless(needs);
const DEVICE_HEX = deviceTopic(TEST_DEVICE_ID, 'x').split('/')[1];
const OTHER_HEX = 'd10000000000000b';
const CLOUD = { username: 'cloud', password: 'pw-cloud' };


describe('runtime over mosquitto: a command and an update', { skip }, () => {
  let broker: MosquittoBroker;
  before(async () => {
    requireComponents(needs);
    broker = await startMosquitto({
      devices: [
        { deviceId: DEVICE_HEX, password: 'pw-dev' },
        { deviceId: OTHER_HEX, password: 'pw-other' },
      ],
      services: [{ ...CLOUD, read: ['holdfast/+/telemetry'], write: ['holdfast/+/cmd', 'holdfast/+/update', 'holdfast/+/receipt'] }],
      maxPacketSize: 8192,
    });
  });
  after(async () => {
    await broker?.stop();
  });

  it('a signed command is applied once and answered through mosquitto; another device cannot read it; the update travels in chunks and is staged', async () => {
    const fleet = makeFleet();
    const world = makeWorld();
    const release = world.release(2, 1);
    const flash = new SimFlash(combinedFlashOptions('plain'));
    provisionAll(flash, fleet, world);
    const { runtime: runtimeFlash, update } = split(flash);
    const decision = new SimBootloader({ otadata: update.otadata, slots: update.slots, createSha256: () => world.crypto.createSha256(), chip: world.chip }).boot();
    const parts = partsOf(runtimeFlash);
    const byLabel = new Map<string, FlashPartition>();
    for (const [key] of LAYOUT) byLabel.set(PARTITION_LABELS[key], parts[key] as FlashPartition);
    byLabel.set('otadata', update.otadata);
    byLabel.set('ota_0', update.slots[0]);
    byLabel.set('ota_1', update.slots[1]);
    byLabel.set('hf_progress', update.progress);
    const clock = new JumpClock();
    const connector = new NodeStreamConnector();
    // The last chunk may arrive in a socket callback (the client decodes there), so the restart can be thrown outside
    // service(): the callbacks are wrapped to keep it (on the device, restart never returns).
    let resetInCallback: DeviceReset | undefined;
    const guard = <A extends unknown[]>(f: (...a: A) => void) => (...a: A): void => {
      if (resetInCallback !== undefined) return;
      try {
        f(...a);
      } catch (error) {
        if (!(error instanceof DeviceReset)) throw error;
        resetInCallback = error;
      }
    };
    const guarded: StreamConnector = {
      connect: (host, port, callbacks) => connector.connect(host, port, { onReadable: guard((n: number) => callbacks.onReadable(n)), onWritable: guard((n: number) => callbacks.onWritable(n)), onError: guard((r: string) => callbacks.onError(r)) }),
    };
    const actuator = new RecordingActuator();
    const hal: RuntimeHal = {
      ...networkHal({ clock, crypto: fleet.crypto, connector: guarded, partitions: byLabel, actuator }),
      bootControl: { runningSlot: () => decision.slot, runningState: () => 'undefined', requestTrial: () => undefined, confirmRunning: () => undefined, rejectRunning: () => undefined },
    };
    const base = deviceConfig(fleet);
    const runtime: Runtime = startRuntime(hal, {
      ...base,
      link: { ...base.link, host: broker.host, port: broker.port, session: { ...base.link.session, clientId: DEVICE_HEX, username: DEVICE_HEX, password: new TextEncoder().encode('pw-dev') } },
      update: { boardId: BOARD, chip: world.chip, watchdogTimeoutMs: WATCHDOG_MS, requestRetryMs: 2_000 },
    });

    // The cloud: receipts for every record, replies collected, the update responder attached.
    const keys = deriveDeviceKeys(fleet.crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
    const primitives = envelopePrimitives(fleet.crypto);
    const window = new IngestWindow();
    const replies: ReturnType<typeof decodeCommandReply>[] = [];
    const cloud = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { ...CLOUD, protocolVersion: 5, clean: true });
    const other = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, { username: OTHER_HEX, password: 'pw-other', protocolVersion: 5, clean: true });
    const leaked: string[] = [];
    other.on('message', (topic) => leaked.push(topic));
    try {
      await other.subscribeAsync(deviceTopic(TEST_DEVICE_ID, 'cmd'), { qos: 1 });
      cloud.on('message', (topic, payload) => {
        const opened = authenticateEnvelope(new Uint8Array(payload), { primitives, deviceId: TEST_DEVICE_ID, keys: () => keys });
        // A record sent again (a resend before its receipt) is a duplicate: counted once, as the ingest does.
        if (window.check(opened.counter) === 'fresh') {
          window.accept(opened.counter);
          if (opened.payload[0] === COMMAND_REPLY_TYPE) replies.push(decodeCommandReply(opened.payload));
        }
        cloud.publish(deviceTopic(TEST_DEVICE_ID, 'receipt'), Buffer.from(sealReceipt(primitives, keys, window.state())), { qos: 1 });
      });
      const responder = createUpdateResponder({ offerFor: () => ({ manifest: release.manifest, image: release.image }), keysFor: () => keys, primitives });
      const detach = attachUpdateResponder(
        {
          subscribe: (t, o) => cloud.subscribe(t, o),
          unsubscribe: (t) => cloud.unsubscribe(t),
          publish: (t, p, o) => cloud.publish(t, Buffer.from(p), o),
          on: (e, l) => cloud.on(e, (t: string, p: Buffer) => l(t, new Uint8Array(p))),
          off: () => undefined,
        },
        responder,
      );
      await cloud.subscribeAsync(`holdfast/${DEVICE_HEX}/telemetry`, { qos: 1 });

      const run = async (until: () => boolean, what: string, timeoutMs = 20_000): Promise<DeviceReset | undefined> => {
        const end = Date.now() + timeoutMs;
        while (Date.now() < end) {
          if (resetInCallback !== undefined) return resetInCallback;
          try {
            runtime.service();
          } catch (error) {
            if (error instanceof DeviceReset) return error;
            throw error;
          }
          if (until()) return undefined;
          await sleep(5);
        }
        throw new Error(`timed out waiting for ${what} (link ${JSON.stringify(runtime.status().linkConnected)}, updates ${JSON.stringify(runtime.updateStats())})`);
      };
      await run(() => runtime.status().linkConnected, 'the connection');
      clock.jump = 61_000;
      const command = fleet.command(3, 'set-output', { target: 1, value: 1 });
      await cloud.publishAsync(deviceTopic(TEST_DEVICE_ID, 'cmd'), Buffer.from(command), { qos: 1 });
      await run(() => replies.length >= 1, 'the reply');
      assert.equal(actuator.applied.length, 1);
      assert.deepEqual([replies[0].status, replies[0].counter], ['applied', 3]);
      await cloud.publishAsync(deviceTopic(TEST_DEVICE_ID, 'cmd'), Buffer.from(command), { qos: 1 });
      await run(() => replies.length >= 2, 'the second reply');
      assert.equal(replies[1].status, 'already-applied');
      assert.equal(actuator.applied.length, 1);

      for (const out of responder.offer(DEVICE_HEX)) await cloud.publishAsync(out.topic, Buffer.from(out.payload), { qos: 1 });
      const reset = await run(() => false, 'the update', 30_000);
      assert.match(reset?.message ?? '', /update staged/);
      assert.equal(responder.stats().chunksSent >= 2, true);
      assert.deepEqual(leaked, [], 'another device read nothing of this device');
      detach();
    } finally {
      connector.closeAll();
      await cloud.endAsync();
      await other.endAsync();
    }
  });
});
