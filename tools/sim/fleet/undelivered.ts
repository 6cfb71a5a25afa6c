/**
 * Which records are still in a device's outbox at the end of a run (read
 * from a copy of its flash, so the device's own flash is not touched): a
 * durable record the ingest does not hold but the device still keeps is
 * undelivered, not lost (docs/design/fleet-sim.md, "The books").
 *
 * Host tool (Node).
 */
import type { DeviceKeys } from '../../../firmware/security/envelope-keys.ts';
import { envelopePrimitives } from '../../../firmware/security/envelope-primitives.ts';
import { authenticateEnvelope } from '../../../firmware/security/envelope.ts';
import { Outbox } from '../../../firmware/storage/outbox.ts';
import { SimFlash } from '../flash/sim-flash.ts';
import { partitionsOf } from '../runtime-device.ts';
import type { FleetFirmware } from './fleet-firmware.ts';

/** Counters of the records the device's outbox still holds (unacknowledged), or undefined when the outbox does not open. */
export function undeliveredCounters(flash: SimFlash, fw: FleetFirmware, keys: DeviceKeys, deviceId: Uint8Array): Set<number> | undefined {
  const copy = SimFlash.fromSnapshot(flash.snapshot());
  copy.powerOn();
  let outbox: Outbox;
  try {
    outbox = Outbox.open(partitionsOf(copy, fw.layout).outbox, { policy: 'reject' });
  } catch {
    return undefined;
  }
  const primitives = envelopePrimitives(fw.crypto);
  const counters = new Set<number>();
  for (let r = outbox.peek(); r !== undefined; r = outbox.next()) {
    try {
      counters.add(authenticateEnvelope(r.payload, { primitives, deviceId, keys: () => keys }).counter);
    } catch {
      // A record that does not open (torn) holds nothing the books count.
    }
  }
  return counters;
}
