/**
 * The answer to a command that came over MQTT (docs/spec/device-topics.md,
 * "Command reply"): a telemetry record of type 0x04, sealed and appended to
 * the outbox like every record, so it is durable across power cuts,
 * authenticated by the device key, and released only on the ingest's
 * receipt: an answer is evidence. 22 bytes, little-endian, format version
 * in byte 1. The decoder is total: any bytes give a reply or a
 * CommandReplyError with a stable code.
 */
import { setErrorName } from '../base/error-name.ts';
import { FORMAT_VERSIONS } from '../base/format-versions.ts';
import type { CommandRefusal } from './commands.ts';

export const COMMAND_REPLY_TYPE = 0x04;
export const COMMAND_REPLY_LENGTH = 22;
/** Bytes of SHA-256(envelope) carried to name the command answered (also when its counter is unknown). */
export const ENVELOPE_DIGEST_PREFIX = 8;

export type ReplyStatus = 'applied' | 'accepted' | 'already-applied' | 'refused' | 'unavailable';
export type ReplyMode = 'unchanged' | 'entered' | 'left' | 'leave-refused';
export type UnavailableReason = 'replay-unreadable' | 'journal-missing';

/** Codes on the wire: index + 1 (0 is "none"). Append only. */
export const REPLY_STATUSES: readonly ReplyStatus[] = Object.freeze(['applied', 'accepted', 'already-applied', 'refused', 'unavailable']);
export const REPLY_REFUSALS: readonly CommandRefusal[] = Object.freeze([
  'unauthenticated',
  'replay',
  'stale',
  'reordered',
  'safe-mode',
  'rate-limited',
  'unknown-command',
  'bad-parameters',
  'outcome-unknown',
  'journal-unavailable',
  'key-revoked',
  'revocation-unavailable',
]);
export const REPLY_UNAVAILABLE: readonly UnavailableReason[] = Object.freeze(['replay-unreadable', 'journal-missing']);
export const REPLY_MODES: readonly ReplyMode[] = Object.freeze(['unchanged', 'entered', 'left', 'leave-refused']);

export interface CommandReply {
  readonly status: ReplyStatus;
  /** The refusal (status 'refused') or why commands are unavailable (status 'unavailable'); otherwise null. */
  readonly reason: CommandRefusal | UnavailableReason | null;
  readonly mode: ReplyMode;
  /** The command's counter; 0 when it is not known (refused before its counter was authenticated). */
  readonly counter: number;
  /** The first 8 bytes of SHA-256 over the envelope as received. */
  readonly envelopeDigest: Uint8Array;
}

export type CommandReplyErrorCode = 'truncated' | 'wrong-type' | 'format-too-new' | 'bad-version' | 'bad-field';

export class CommandReplyError extends Error {
  readonly code: CommandReplyErrorCode;
  constructor(code: CommandReplyErrorCode, message: string) {
    super(message);
    this.code = code;
    setErrorName(this, 'CommandReplyError');
  }
}

export function encodeCommandReply(reply: CommandReply): Uint8Array {
  const out = new Uint8Array(COMMAND_REPLY_LENGTH);
  const view = new DataView(out.buffer);
  out[0] = COMMAND_REPLY_TYPE;
  out[1] = FORMAT_VERSIONS.commandReply;
  out[2] = REPLY_STATUSES.indexOf(reply.status) + 1;
  if (out[2] === 0) throw new RangeError(`unknown reply status ${String(reply.status)}`);
  out[3] = reasonCode(reply);
  out[4] = REPLY_MODES.indexOf(reply.mode);
  if (reply.mode !== REPLY_MODES[out[4]]) throw new RangeError(`unknown reply mode ${String(reply.mode)}`);
  if (!Number.isSafeInteger(reply.counter) || reply.counter < 0) throw new RangeError(`counter must be a non-negative safe integer, got ${reply.counter}`);
  view.setUint32(6, reply.counter % 0x1_0000_0000, true);
  view.setUint32(10, Math.floor(reply.counter / 0x1_0000_0000), true);
  if (reply.envelopeDigest.length !== ENVELOPE_DIGEST_PREFIX) throw new RangeError(`envelope digest must be ${ENVELOPE_DIGEST_PREFIX} bytes`);
  out.set(reply.envelopeDigest, 14);
  return out;
}

function reasonCode(reply: CommandReply): number {
  if (reply.status === 'refused') {
    const i = REPLY_REFUSALS.indexOf(reply.reason as CommandRefusal);
    if (i < 0) throw new RangeError(`unknown refusal ${String(reply.reason)}`);
    return i + 1;
  }
  if (reply.status === 'unavailable') {
    const i = REPLY_UNAVAILABLE.indexOf(reply.reason as UnavailableReason);
    if (i < 0) throw new RangeError(`unknown unavailable reason ${String(reply.reason)}`);
    return i + 1;
  }
  if (reply.reason !== null) throw new RangeError(`a ${reply.status} reply has no reason`);
  return 0;
}

export function decodeCommandReply(bytes: Uint8Array): CommandReply {
  if (bytes.length < 2) throw new CommandReplyError('truncated', `a command reply is ${COMMAND_REPLY_LENGTH} bytes, got ${bytes.length}`);
  if (bytes[0] !== COMMAND_REPLY_TYPE) throw new CommandReplyError('wrong-type', `record type 0x${bytes[0].toString(16)} is not a command reply (0x04)`);
  if (bytes[1] > FORMAT_VERSIONS.commandReply) throw new CommandReplyError('format-too-new', `command reply format ${bytes[1]} is newer than ${FORMAT_VERSIONS.commandReply}`);
  if (bytes[1] !== FORMAT_VERSIONS.commandReply) throw new CommandReplyError('bad-version', `command reply format ${bytes[1]} is not ${FORMAT_VERSIONS.commandReply}`);
  if (bytes.length !== COMMAND_REPLY_LENGTH) throw new CommandReplyError('truncated', `a command reply is ${COMMAND_REPLY_LENGTH} bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const status = REPLY_STATUSES[bytes[2] - 1];
  if (status === undefined) throw new CommandReplyError('bad-field', `status code ${bytes[2]}`);
  let reason: CommandReply['reason'] = null;
  if (status === 'refused') reason = REPLY_REFUSALS[bytes[3] - 1] ?? null;
  else if (status === 'unavailable') reason = REPLY_UNAVAILABLE[bytes[3] - 1] ?? null;
  else if (bytes[3] !== 0) throw new CommandReplyError('bad-field', `a ${status} reply has reason code ${bytes[3]}`);
  if ((status === 'refused' || status === 'unavailable') && reason === null) throw new CommandReplyError('bad-field', `reason code ${bytes[3]}`);
  const mode = REPLY_MODES[bytes[4]];
  if (mode === undefined) throw new CommandReplyError('bad-field', `mode code ${bytes[4]}`);
  if (bytes[5] !== 0) throw new CommandReplyError('bad-field', 'reserved byte 5 is not 0');
  const high = view.getUint32(10, true);
  if (high >= 0x20_0000) throw new CommandReplyError('bad-field', 'counter above 2^53 - 1');
  const counter = high * 0x1_0000_0000 + view.getUint32(6, true);
  return { status, reason, mode, counter, envelopeDigest: bytes.slice(14, 22) };
}
