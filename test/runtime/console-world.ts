/**
 * The serial console on a runtime (engine-neutral: Node and XS): a host's
 * side of the line over `startRuntimeConsole(runtime, …)`, which sends
 * command frames, collects the `item` and final `ok`/`err` frames of each
 * reply, and unlocks with the fleet's console key (challenge, Ed25519
 * signature, response), as `holdfast console --unlock-key` does.
 */
import * as ed from '@noble/ed25519';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { configureEd25519 } from '../../firmware/security/noble-crypto.ts';
import { ConsoleDecoder, encodeConsoleFrame, type ConsoleFrame, type ConsoleServer } from '../../firmware/protocol/console/index.ts';
import { consoleDeviceId, startRuntimeConsole } from '../../firmware/runtime/console-target.ts';
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import type { Runtime } from '../../firmware/runtime/main.ts';
import { xorshiftEntropy } from '../protocol/client-fakes.ts';
import { TEST_DEVICE_ID } from '../support/test-device.ts';
import { ok } from '../support/check.ts';
import type { Fleet } from './runtime-world.ts';

/** The fleet's console key (its private seed; the device holds only the public half). */
export const CONSOLE_SEED = new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff);
/** Another key: its signatures are refused. */
export const WRONG_SEED = new Uint8Array(32).map((_, i) => (i * 31 + 5) & 0xff);

/** Lower-case hex, as the console writes challenges. */
export const hex = bytesToHex;

export interface ConsoleReply {
  /** The final frame: `ok` or `err`. */
  readonly reply: ConsoleFrame;
  readonly items: readonly ConsoleFrame[];
}

export interface ConsoleHost {
  readonly server: ConsoleServer;
  /** Every frame the device wrote (hello, logs, replies). */
  readonly frames: ConsoleFrame[];
  send(op: string, fields?: Record<string, string>): ConsoleReply;
  /** Unlock with `seed` (default the fleet's console key): the response's reply. */
  unlock(seed?: Uint8Array): ConsoleFrame;
}

export interface ConsoleHostOptions {
  /** The console public key provisioned on the device (default the fleet's); null: none. */
  readonly consoleKey?: Uint8Array | null;
  readonly clock: MonotonicClock;
}

export function attachConsole(runtime: Runtime, fleet: Fleet, options: ConsoleHostOptions): ConsoleHost {
  configureEd25519();
  const frames: ConsoleFrame[] = [];
  const decoder = new ConsoleDecoder();
  const server = startRuntimeConsole(runtime, {
    output: { write: (bytes) => (decoder.push(bytes, (f) => frames.push(f)), 4096) },
    crypto: fleet.crypto,
    entropy: xorshiftEntropy(0xc0de),
    clock: options.clock,
    deviceId: consoleDeviceId(TEST_DEVICE_ID),
    consoleKey: options.consoleKey === null ? undefined : (options.consoleKey ?? ed.getPublicKey(CONSOLE_SEED)),
  });
  let id = 0;
  const send = (op: string, fields: Record<string, string> = {}): ConsoleReply => {
    const from = frames.length;
    const cmdId = String(++id);
    server.receive(encodeConsoleFrame('cmd', { id: cmdId, op, ...fields }));
    const mine = frames.slice(from).filter((f) => f.fields.id === cmdId);
    const reply = mine[mine.length - 1];
    ok(reply !== undefined && (reply.kind === 'ok' || reply.kind === 'err'), `${op}: a reply (got ${JSON.stringify(mine)})`);
    return { reply, items: mine.filter((f) => f.kind === 'item') };
  };
  return {
    server,
    frames,
    send,
    unlock(seed = CONSOLE_SEED) {
      const challenge = send('unlock').reply;
      ok(challenge.kind === 'ok', `a challenge: ${JSON.stringify(challenge.fields)}`);
      const sig = hex(ed.sign(hexToBytes(challenge.fields.challenge), seed));
      return send('unlock-response', { number: challenge.fields.number, sig }).reply;
    },
  };
}
