/**
 * A device with the runtime's stores and the update partitions on one
 * cuttable flash, booted through the simulated ESP-IDF bootloader, and a
 * "cloud" around the scripted broker: the update responder of
 * tools/update-server/responder.ts and an ingest that accepts the device's
 * records (IngestWindow) and sends receipts. Engine-neutral (Node and XS).
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { deriveDeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { sealReceipt } from '../../firmware/security/receipt.ts';
import { deviceTopic } from '../../firmware/protocol/telemetry/index.ts';
import type { RuntimeUpdateConfig } from '../../firmware/runtime/main.ts';
import { otaLayoutBlocks, provisionDevice, SimBootloader, type BootDecision } from '../../tools/sim/bootloader.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import type { FlashMode, SimFlashOptions } from '../../tools/sim/flash/sim-flash.ts';
import { IngestWindow } from '../../tools/ingest/window.ts';
import { createUpdateResponder, type UpdateOffer, type UpdateResponder } from '../../tools/update-server/responder.ts';
import { FakeBroker } from '../protocol/session-broker.ts';
import { serve } from '../protocol/client-fakes.ts';
import { TEST_DEVICE_ID, TEST_KEY_ID, testSecret } from '../support/test-device.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { partitionsOf as updatePartitionsOf, PROGRESS_BLOCKS, SLOT_BLOCKS, WATCHDOG_MS, type World } from '../update/agent-world.ts';
import { bootDevice, BLOCK, provision, TOTAL_BLOCKS, type Device, type Fleet } from './runtime-world.ts';

export const UPDATE_BLOCKS = otaLayoutBlocks(SLOT_BLOCKS) + PROGRESS_BLOCKS;
export const DEVICE_HEX = deviceTopic(TEST_DEVICE_ID, 'x').split('/')[1];
export const UPDATE_TOPIC = deviceTopic(TEST_DEVICE_ID, 'update');
const TELEMETRY_TOPIC = deviceTopic(TEST_DEVICE_ID, 'telemetry');
const RECEIPT_TOPIC = deviceTopic(TEST_DEVICE_ID, 'receipt');

export function combinedFlashOptions(mode: FlashMode): SimFlashOptions {
  return { blocks: TOTAL_BLOCKS + UPDATE_BLOCKS, blockLength: BLOCK, mode };
}

export function split(flash: FlashPartition) {
  return { runtime: new PartitionView(flash, 0, TOTAL_BLOCKS), update: updatePartitionsOf(new PartitionView(flash, TOTAL_BLOCKS, UPDATE_BLOCKS)) };
}

/** The factory: the runtime's stores formatted, release 1 in slot 0, otadata blank. */
export function provisionAll(flash: FlashPartition, fleet: Fleet, world: World): void {
  const { runtime, update } = split(flash);
  provision(runtime, fleet);
  provisionDevice(update, world.factory.image);
}

export interface UpdateBoot {
  readonly d: Device;
  readonly decision: BootDecision;
}

/** One boot: the bootloader picks a slot, then the runtime starts over it (a restart inside the constructor propagates). */
export function bootUpdateDevice(flash: FlashPartition, fleet: Fleet, world: World, update: Partial<RuntimeUpdateConfig> = {}): UpdateBoot {
  const { runtime, update: parts } = split(flash);
  const decision = new SimBootloader({ otadata: parts.otadata, slots: parts.slots, createSha256: () => world.crypto.createSha256(), chip: world.chip }).boot();
  const d = bootDevice(runtime, fleet, {
    extraPartitions: { otadata: parts.otadata, ota_0: parts.slots[0], ota_1: parts.slots[1], hf_progress: parts.progress },
    bootControl: { runningSlot: () => decision.slot, runningState: () => (decision.state === undefined || decision.state === 'unrecognized' ? 'undefined' : decision.state), requestTrial: () => undefined, confirmRunning: () => undefined, rejectRunning: () => undefined },
    config: { update: { boardId: BOARD, chip: world.chip, watchdogTimeoutMs: WATCHDOG_MS, ...update } },
  });
  return { d, decision };
}

/** The broker, the ingest's window and receipts, and the update responder, for one device. */
export class Cloud {
  broker = new FakeBroker();
  readonly window = new IngestWindow();
  readonly responder: UpdateResponder;
  /** Chunk bytes the responder served, over all boots. */
  served = 0;
  /** Records the ingest accepted, by record type. */
  readonly accepted = new Map<number, number>();
  private seen = 0;
  private packetId = 1;
  receipts = true;
  /** Chunk messages the cloud still sends (then it stops answering chunk requests: a cut or an outage to come). */
  chunkBudget = Number.POSITIVE_INFINITY;
  private readonly keys;
  private readonly primitives;

  constructor(
    private readonly fleet: Fleet,
    public offer: UpdateOffer | undefined,
  ) {
    this.keys = deriveDeviceKeys(fleet.crypto, testSecret(), TEST_DEVICE_ID, TEST_KEY_ID);
    this.primitives = envelopePrimitives(fleet.crypto);
    const keys = this.keys;
    this.responder = createUpdateResponder({ offerFor: () => this.offer, keysFor: (id, keyId) => (keyId === keys.keyId && id.every((b, i) => b === keys.deviceId[i]) ? keys : undefined), primitives: this.primitives });
  }

  /** Accept the device's newest connection with a fresh broker session. */
  connect(d: Device): void {
    this.broker = new FakeBroker();
    this.broker.reset({ receiveMaximum: 8, autoAck: () => 0 });
    this.seen = 0;
    d.net.last.accept(16_384);
    this.pump(d);
  }

  /** Publish on a device topic (QoS 1). */
  send(d: Device, topic: string, payload: Uint8Array): void {
    const packetId = this.packetId;
    this.packetId = (this.packetId % 60_000) + 1;
    d.net.last.deliver(this.broker.encode({ type: 'publish', topic, payload, qos: 1, retain: false, dup: false, packetId, properties: {} }));
  }

  /** Push the manifest (the cloud starts the update). */
  pushOffer(d: Device): void {
    for (const out of this.responder.offer(DEVICE_HEX)) this.send(d, out.topic, out.payload);
    this.pump(d);
  }

  /** Move bytes both ways, answer requests and send receipts until nothing new happens. */
  pump(d: Device, rounds = 400): void {
    for (let round = 0; round < rounds; round++) {
      serve(d.net.last, this.broker, 16_384);
      d.runtime.service();
      serve(d.net.last, this.broker, 16_384);
      const publishes = this.broker.publishes();
      if (publishes.length === this.seen) return;
      let fresh = false;
      for (let i = this.seen; i < publishes.length; i++) {
        if (this.broker.topics[i] !== TELEMETRY_TOPIC) continue;
        const opened = authenticateEnvelope(publishes[i].payload, { primitives: this.primitives, deviceId: TEST_DEVICE_ID, keys: () => this.keys });
        if (this.window.check(opened.counter) === 'fresh') {
          this.window.accept(opened.counter);
          fresh = true;
          const type = opened.payload[0];
          this.accepted.set(type, (this.accepted.get(type) ?? 0) + 1);
        }
        for (const out of this.responder.onTelemetry(TELEMETRY_TOPIC, publishes[i].payload)) {
          if (out.payload[1] === 0x02) {
            if (this.chunkBudget <= 0) continue;
            this.chunkBudget--;
            this.served += out.payload.length - 14;
          }
          this.send(d, out.topic, out.payload);
        }
      }
      this.seen = publishes.length;
      if (fresh && this.receipts) this.send(d, RECEIPT_TOPIC, sealReceipt(this.primitives, this.keys, this.window.state()));
    }
  }
}
