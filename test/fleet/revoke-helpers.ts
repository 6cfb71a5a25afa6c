/** Small views of the inventory for the revocation tests. */
import { toIngestInventory, type Fleet } from '../../tools/fleet/inventory.ts';
import { brokerConfig as generate } from '../../tools/fleet/broker.ts';

export function toIngest(fleet: Fleet): { deviceId: string; keyId: number }[] {
  return toIngestInventory(fleet).devices;
}

/** The password file's text (who has an account). */
export function brokerConfig(fleet: Fleet): string {
  return generate(fleet, { iterations: 1 }).passwords;
}
