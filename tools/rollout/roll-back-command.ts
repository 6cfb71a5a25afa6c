/**
 * The signed roll-back command a halted rollout sends (docs/spec/rollout.md
 * `onHalt: roll-back`; docs/spec/commands.md 0x21 `roll-back-update`): the
 * device leaves `imageVersion` for its other slot, only while it runs that
 * version and only when the other slot holds a valid image at or above its
 * security floor. Built with the firmware's own payload codec and envelope
 * sealer, so host and device cannot disagree on the bytes.
 *
 * Host tool (Node).
 */
import { COMMAND_POLICY, encodeCommandPayload, findRow } from '../../firmware/runtime/commands.ts';
import { sealCommand } from '../../firmware/security/envelope-command.ts';

/** The command key's signer: its key id (commandKeyId) and an Ed25519 signature function. */
export interface CommandSigner {
  readonly keyId: number;
  sign(message: Uint8Array): Uint8Array;
}

/** The payload of roll-back-update naming `imageVersion` (u32, 1..2^32 - 1). */
export function rollBackPayload(imageVersion: number): Uint8Array {
  if (!Number.isInteger(imageVersion) || imageVersion < 1 || imageVersion > 0xffff_ffff) throw new RangeError(`image version must be 1..4294967295, got ${imageVersion}`);
  return encodeCommandPayload(findRow(COMMAND_POLICY, 0x21)!, { version: imageVersion });
}

/** A roll-back-update envelope for one device (8-byte id), under the command key's counter value `counter` (above every counter it used before). */
export function rollBackCommand(deviceId: Uint8Array, imageVersion: number, counter: number, signer: CommandSigner): Uint8Array {
  return sealCommand(rollBackPayload(imageVersion), { deviceId, counter: { next: () => counter }, keyId: signer.keyId, sign: (m) => signer.sign(m) });
}
