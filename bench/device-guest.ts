/**
 * Inside XS, for bench/device.bench.ts and test/xs/ram-budget.test.ts: the
 * device's phases one after the other in one machine, each keeping what a
 * running device keeps (the opened stores stay open), so the live heap
 * after each phase is the device's at that point. Flash lives on the Node
 * side (RemoteFlash), signed inputs are made on the Node side and passed as
 * hex: nothing here signs (noble's `sign` would build its 4,224-point table
 * in this machine and hide what the firmware itself keeps).
 *
 * Ops, in order: 'baseline' (the loaded bundle, what a Moddable build
 * preloads into flash), 'provision' (format the partitions and write the
 * root, the outbox backlog: factory work, dropped afterwards), 'boot' (open
 * counter, outbox, audit log, trust store, replay store), 'drain' (read and
 * acknowledge the outbox backlog), 'update' (manifest signature check under
 * the stored root and the image hash), 'command' (open the command
 * processor and handle one Ed25519-signed command), 'verify' (`count` more
 * Ed25519 verifications, for the per-verify cost; through the device's
 * Crypto, or through what 'verifier' set: another base window, or noble's
 * own `verify` with its module-level table). Every reply's meter is
 * taken after gc(): live slots only.
 */
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { envelopePrimitives } from '../firmware/security/envelope-primitives.ts';
import { ReplayStore } from '../firmware/security/replay-store.ts';
import { Counter } from '../firmware/storage/counter.ts';
import { Outbox } from '../firmware/storage/outbox.ts';
import { AuditLog } from '../firmware/storage/audit-log.ts';
import { TrustStore } from '../firmware/update/trust-store.ts';
import { trustProvisionedRoot, type TrustedRoot } from '../firmware/update/root.ts';
import { checkManifest } from '../firmware/update/manifest.ts';
import { CommandJournal, CommandProcessor, type CommandResult } from '../firmware/runtime/commands.ts';
import type { Crypto } from '../firmware/hal/crypto.ts';
import type { FlashPartition } from '../firmware/hal/flash.ts';
import * as ed from '@noble/ed25519';
import { Ed25519Verifier } from '../firmware/security/ed25519-verifier.ts';
import { RemoteFlash } from '../tools/xs/guest/remote-flash.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';

/** What the Node side sends. Byte strings are hex. */
export interface DeviceBenchRequest {
  op: 'baseline' | 'provision' | 'boot' | 'drain' | 'update' | 'command' | 'verifier' | 'verify';
  /** 'provision': the ed25519 base window of the device's Crypto (absent: the firmware default). 'verifier': the same, or 'noble' for @noble/ed25519's own verify. */
  baseWindow?: number | 'noble';
  rootHex?: string;
  records?: number;
  recordBytes?: number;
  manifestHex?: string;
  imageLength?: number;
  boardId?: string;
  slotSize?: number;
  commandKeyId?: number;
  commandPublicKeyHex?: string;
  commandHex?: string;
  deviceIdHex?: string;
  count?: number;
  signatureHex?: string;
  messageHex?: string;
  publicKeyHex?: string;
}

declare const gc: () => void;

/** Partition sizes in 4 KiB blocks. */
const BLOCKS = Object.freeze({ counter: 2, outbox: 32, audit: 4, security: 2, replay: 2, journal: 2 });
const AUDIT_KEY = new Uint8Array(32).fill(0xa5);
const JOURNAL_SLOTS = 4;

interface DeviceState {
  crypto?: Crypto;
  flash?: Record<keyof typeof BLOCKS, FlashPartition>;
  counter?: Counter;
  outbox?: Outbox;
  audit?: AuditLog;
  trust?: TrustStore;
  root?: TrustedRoot;
  replay?: ReplayStore;
  commands?: CommandProcessor;
  /** 'verifier': what 'verify' calls instead of the device's Crypto. */
  verify?: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;
}

function hexBytes(hex: string | undefined): Uint8Array {
  if (hex === undefined) throw new Error('missing hex field');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The image the manifest names: the same deterministic bytes as test/update/manifest-fixtures.ts testImage. */
function hashImage(crypto: Crypto, length: number): Uint8Array {
  const hash = crypto.createSha256();
  const chunk = new Uint8Array(4096);
  let x = (0x9e3779b9 ^ 1) >>> 0;
  for (let done = 0; done < length; done += chunk.length) {
    const n = Math.min(chunk.length, length - done);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk[i] = x & 0xff;
    }
    hash.update(n === chunk.length ? chunk : chunk.subarray(0, n));
  }
  return hash.digest();
}

export function serveDeviceBench(): void {
  const state: DeviceState = {};
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const m = JSON.parse(fromUtf8(new Uint8Array(request))) as DeviceBenchRequest;
    let reply: Record<string, unknown> = {};
    if (m.op === 'provision') {
      if (m.baseWindow === 'noble') throw new Error("provision: baseWindow 'noble' is for the 'verifier' op");
      // No baseWindow: the firmware's default Crypto, as the device builds it.
      const crypto = m.baseWindow === undefined ? createNobleCrypto() : createNobleCrypto({ ed25519BaseWindow: m.baseWindow });
      const flash = {
        counter: RemoteFlash.create({ blocks: BLOCKS.counter }),
        outbox: RemoteFlash.create({ blocks: BLOCKS.outbox }),
        audit: RemoteFlash.create({ blocks: BLOCKS.audit }),
        security: RemoteFlash.create({ blocks: BLOCKS.security }),
        replay: RemoteFlash.create({ blocks: BLOCKS.replay }),
        journal: RemoteFlash.create({ blocks: BLOCKS.journal }),
      };
      Counter.format(flash.counter);
      Outbox.format(flash.outbox);
      AuditLog.format(flash.audit);
      ReplayStore.format(flash.replay);
      CommandJournal.format(flash.journal, JOURNAL_SLOTS);
      const verdict = trustProvisionedRoot(crypto, hexBytes(m.rootHex));
      if (!verdict.ok) throw new Error(`root refused: ${verdict.reason}`);
      new TrustStore(flash.security, crypto).save(verdict.root);
      const outbox = Outbox.open(flash.outbox);
      const payload = new Uint8Array(m.recordBytes ?? 64).fill(0x42);
      for (let i = 0; i < (m.records ?? 0); i++) outbox.append(payload);
      outbox.flush();
      // Provisioning happens once, in the factory: only the crypto and the partitions are kept.
      state.crypto = crypto;
      state.flash = flash;
      reply = { queued: outbox.stats().queued };
    }
    if (m.op === 'boot') {
      const crypto = state.crypto!;
      const flash = state.flash!;
      const counter = Counter.open(flash.counter);
      state.counter = counter;
      state.outbox = Outbox.open(flash.outbox);
      state.audit = AuditLog.open(flash.audit, { crypto, key: AUDIT_KEY, counter });
      state.trust = new TrustStore(flash.security, crypto);
      state.root = state.trust.load();
      if (state.root === undefined) throw new Error('no root after provisioning');
      state.replay = ReplayStore.open(flash.replay);
      reply = { queued: state.outbox.stats().queued, rootVersion: state.root.version };
    }
    if (m.op === 'drain') {
      const outbox = state.outbox!;
      let drained = 0;
      for (let record = outbox.next(); record !== undefined; record = outbox.next()) {
        outbox.ack(record.seq);
        drained++;
      }
      outbox.flush();
      reply = { drained, queued: outbox.stats().queued };
    }
    if (m.op === 'update') {
      const crypto = state.crypto!;
      const policy = { boardId: m.boardId ?? '', runningVersion: 1, securityFloor: 0, slotSize: m.slotSize ?? 0 };
      const verdict = checkManifest(crypto, state.root!, hexBytes(m.manifestHex), policy);
      if (!verdict.ok) throw new Error(`manifest refused: ${verdict.reason}`);
      const digest = hashImage(crypto, m.imageLength ?? 0);
      let same = digest.length === verdict.manifest.imageDigest.length;
      for (let i = 0; i < digest.length; i++) if (digest[i] !== verdict.manifest.imageDigest[i]) same = false;
      if (!same) throw new Error('image digest differs from the manifest');
      reply = { ok: true };
    }
    if (m.op === 'command') {
      const crypto = state.crypto!;
      const flash = state.flash!;
      const applied: number[] = [];
      // The rate limiter counts from the processor's start: the command comes a minute later (as in test/runtime/commands.cases.ts).
      const clock = { t: 0, ticks(): number { return this.t; } };
      state.commands = CommandProcessor.open({
        primitives: envelopePrimitives(crypto),
        deviceId: hexBytes(m.deviceIdHex),
        commandKey: { keyId: m.commandKeyId ?? 0, publicKey: hexBytes(m.commandPublicKeyHex) },
        replay: state.replay!,
        sender: 0,
        journal: flash.journal,
        journalSlots: JOURNAL_SLOTS,
        actuator: { apply: (_effect, counter) => void applied.push(counter) },
        clock,
      });
      clock.t = 60_000;
      const result: CommandResult = state.commands.handle(hexBytes(m.commandHex), 'normal');
      reply = { status: result.status, applied: applied.length, ...(result.status === 'refused' ? { reason: result.reason, detail: result.detail } : {}) };
    }
    if (m.op === 'verifier') {
      if (m.baseWindow === 'noble') {
        // configureEd25519 ran in createNobleCrypto at 'provision'.
        state.verify = (signature, message, publicKey) => ed.verify(signature, message, publicKey, { zip215: false });
      } else {
        const verifier = new Ed25519Verifier({ baseWindow: m.baseWindow ?? 0 });
        state.verify = (signature, message, publicKey) => verifier.verify(signature, message, publicKey);
      }
    }
    if (m.op === 'verify') {
      const crypto = state.crypto!;
      const verify = state.verify ?? ((s: Uint8Array, msg: Uint8Array, k: Uint8Array) => crypto.ed25519Verify(s, msg, k));
      let valid = 0;
      const signature = hexBytes(m.signatureHex);
      const publicKey = hexBytes(m.publicKeyHex);
      const message = hexBytes(m.messageHex);
      for (let i = 0; i < (m.count ?? 0); i++) if (verify(signature, message, publicKey)) valid++;
      reply = { valid };
    }
    gc();
    return utf8(JSON.stringify(reply)).buffer as ArrayBuffer;
  };
}
