/**
 * The command policy table (docs/spec/commands.md, "Policy table") and the
 * command payload codec. One row per command; the table is data, evaluated
 * by commands.ts, and mirrored row by row in the spec and the tests.
 *
 * Payload (the envelope's payload, little-endian): byte 0 the command code,
 * then the row's parameters back to back (u8, u16 or u32 each), nothing more.
 */
export type CommandKind = 'physical' | 'update' | 'diagnostic' | 'mode' | 'key';

export interface ParameterSpec {
  readonly name: string;
  /** Little-endian width: u8, u16 or u32. */
  readonly bytes: 1 | 2 | 4;
  readonly min: number;
  readonly max: number;
}

export interface RateLimit {
  /** At most `count` commands of this row start within any `windowMs` of the monotonic clock. */
  readonly count: number;
  readonly windowMs: number;
}

export interface PolicyRow {
  readonly code: number;
  readonly name: string;
  readonly kind: CommandKind;
  /** Accepted while the device is in safe mode. */
  readonly inSafeMode: boolean;
  readonly rate: RateLimit;
  readonly parameters: readonly ParameterSpec[];
  /** Physical rows: the actuator family the `target` parameter indexes ('output' -> 'output-0' ...). */
  readonly actuator?: string;
}

const TARGET8: ParameterSpec = Object.freeze({ name: 'target', bytes: 1, min: 0, max: 7 });
const MINUTE = 60_000;

function row(code: number, name: string, kind: CommandKind, inSafeMode: boolean, count: number, parameters: readonly ParameterSpec[], actuator?: string): PolicyRow {
  const rate = Object.freeze({ count, windowMs: MINUTE });
  return Object.freeze(actuator === undefined ? { code, name, kind, inSafeMode, rate, parameters: Object.freeze(parameters) } : { code, name, kind, inSafeMode, rate, parameters: Object.freeze(parameters), actuator });
}

/** The policy table. Codes are permanent: a changed row gets a new code. */
export const COMMAND_POLICY: readonly PolicyRow[] = Object.freeze([
  row(0x01, 'set-output', 'physical', false, 6, [TARGET8, Object.freeze({ name: 'value', bytes: 1, min: 0, max: 1 })], 'output'),
  row(0x02, 'set-level', 'physical', false, 6, [Object.freeze({ name: 'target', bytes: 1, min: 0, max: 3 }), Object.freeze({ name: 'value', bytes: 2, min: 0, max: 1000 })], 'level'),
  row(0x03, 'pulse-output', 'physical', false, 2, [TARGET8, Object.freeze({ name: 'value', bytes: 2, min: 1, max: 10_000 })], 'output'),
  row(0x10, 'report-status', 'diagnostic', true, 10, [Object.freeze({ name: 'section', bytes: 1, min: 0, max: 3 })]),
  row(0x20, 'check-update', 'update', true, 4, []),
  /**
   * Leave the running image `version` for the other slot (a halted rollout's roll-back): the runtime refuses it
   * when another version runs (a stale command never rolls back a later image) and the update agent when the
   * other slot holds no valid image at or above the security floor (docs/spec/commands.md).
   */
  row(0x21, 'roll-back-update', 'update', true, 2, [Object.freeze({ name: 'version', bytes: 4, min: 1, max: 0xffffffff })]),
  row(0x30, 'enter-safe-mode', 'mode', false, 2, []),
  /** Refused by the runtime (not the table) while a cause found in this boot stands (docs/spec/safe-mode.md). */
  row(0x31, 'leave-safe-mode', 'mode', true, 2, []),
  /** Safe mode with cause quarantine (also from safe mode: the cause becomes quarantine); left only by leave-quarantine (docs/spec/safe-mode.md). */
  row(0x32, 'quarantine', 'mode', true, 2, []),
  row(0x33, 'leave-quarantine', 'mode', true, 2, []),
  /** Begin a device key rotation to key id `keyId` (current + 1): the device answers with a signed rotation request (docs/spec/key-rotation.md). */
  row(0x40, 'rotate-key', 'key', false, 2, [Object.freeze({ name: 'keyId', bytes: 4, min: 1, max: 0xffffffff })]),
  /** The fleet authority's countersignature: commit the pending rotation to `keyId` whose public key starts with `keyPrefix` (u32 LE). */
  row(0x41, 'confirm-key-rotation', 'key', false, 2, [Object.freeze({ name: 'keyId', bytes: 4, min: 1, max: 0xffffffff }), Object.freeze({ name: 'keyPrefix', bytes: 4, min: 0, max: 0xffffffff })]),
] as const);

/** A decoded payload: the row and its parameter values by name. */
export interface DecodedCommand {
  readonly row: PolicyRow;
  readonly parameters: Readonly<Record<string, number>>;
}

export type PayloadVerdict =
  | { readonly ok: true; readonly command: DecodedCommand }
  | { readonly ok: false; readonly reason: 'unknown-command' | 'bad-parameters'; readonly detail: string; readonly row?: PolicyRow };

export function findRow(table: readonly PolicyRow[], code: number): PolicyRow | undefined {
  for (const r of table) if (r.code === code) return r;
  return undefined;
}

/** Decode a payload against the table: exact length, every parameter within its bounds. */
export function decodeCommandPayload(table: readonly PolicyRow[], payload: Uint8Array): PayloadVerdict {
  if (payload.length < 1) return { ok: false, reason: 'unknown-command', detail: 'empty payload' };
  const r = findRow(table, payload[0]);
  if (r === undefined) return { ok: false, reason: 'unknown-command', detail: `no command 0x${payload[0].toString(16)}` };
  let length = 1;
  for (const p of r.parameters) length += p.bytes;
  if (payload.length !== length) return { ok: false, reason: 'bad-parameters', detail: `${r.name} takes ${length} bytes, got ${payload.length}`, row: r };
  const parameters: Record<string, number> = {};
  let at = 1;
  for (const p of r.parameters) {
    let value = 0;
    for (let i = p.bytes - 1; i >= 0; i--) value = value * 256 + payload[at + i];
    at += p.bytes;
    if (value < p.min || value > p.max) return { ok: false, reason: 'bad-parameters', detail: `${r.name}: ${p.name} ${value} outside ${p.min}..${p.max}`, row: r };
    parameters[p.name] = value;
  }
  return { ok: true, command: { row: r, parameters: Object.freeze(parameters) } };
}

/** Encode a payload (host side and tests): the code, then each parameter; no bounds check (tests send bad ones on purpose). */
export function encodeCommandPayload(r: PolicyRow, values: Readonly<Record<string, number>>): Uint8Array {
  let length = 1;
  for (const p of r.parameters) length += p.bytes;
  const payload = new Uint8Array(length);
  payload[0] = r.code;
  let at = 1;
  for (const p of r.parameters) {
    const value = values[p.name] ?? 0;
    for (let i = 0; i < p.bytes; i++) payload[at + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    at += p.bytes;
  }
  return payload;
}
