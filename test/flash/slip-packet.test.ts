/**
 * SLIP framing and loader packets (tools/flash/slip.ts, packet.ts), and the
 * ROM loader emulator fed directly (no pty): documented byte examples,
 * round trips, and fast-check properties that random and mutated input
 * never makes the decoder or the emulator throw, never grows a frame past
 * its bound, and never writes flash outside what a BEGIN erased.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { SlipDecoder, slipEncode, MAX_LOADER_FRAME } from '../../tools/flash/slip.ts';
import { checksum, decodeCommand, decodeResponse, encodeCommand, encodeResponse, Op, SYNC_PAYLOAD, u32le, words } from '../../tools/flash/packet.ts';
import { RomLoaderEmulator, SYNC_VALUE, type EmulatedChip } from '../../tools/flash/rom-loader-emulator.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';

/** A flash that records every write landing in a sector not erased before it (what the ROM must never do). */
class GuardedFlash implements FlashPartition {
  readonly erased = new Set<number>();
  readonly violations: string[] = [];
  constructor(readonly inner: SimFlash) {}
  status(): FlashStatus {
    return this.inner.status();
  }
  read(byteOffset: number, target: Uint8Array): void {
    this.inner.read(byteOffset, target);
  }
  write(byteOffset: number, data: Uint8Array): void {
    for (let s = Math.floor(byteOffset / 4096); s * 4096 < byteOffset + data.length; s++) if (!this.erased.has(s)) this.violations.push(`write of ${data.length} at 0x${byteOffset.toString(16)} into sector ${s}, not erased`);
    this.inner.write(byteOffset, data);
  }
  eraseBlock(block: number): void {
    this.erased.add(block);
    this.inner.eraseBlock(block);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('SLIP', () => {
  it('escapes 0xC0 and 0xDB as the esptool docs say, and frames with 0xC0', () => {
    assert.equal(hex(slipEncode(Uint8Array.of(0x01, 0xc0, 0x02, 0xdb, 0x03))), 'c001dbdc02dbdd03c0');
    assert.equal(hex(slipEncode(new Uint8Array(0))), 'c0c0');
  });

  it('round trip: any packets, split anywhere, come back whole and in order', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (packets, cuts) => {
        const stream = Buffer.concat(packets.map((p) => slipEncode(p)));
        const decoder = new SlipDecoder();
        const out: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length];
          out.push(...decoder.push(new Uint8Array(stream.subarray(at, at + n))));
          at += n;
        }
        assert.deepEqual(out.map(hex), packets.map(hex));
        assert.equal(decoder.stats.garbageBytes + decoder.stats.badEscapes + decoder.stats.oversizeFrames, 0);
      }),
    );
  });

  it('random bytes: never throws, frames never exceed the bound, garbage is counted', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 1, max: 64 }), (bytes, max) => {
        const decoder = new SlipDecoder(max);
        const frames = decoder.push(bytes);
        assert.ok(frames.every((f) => f.length >= 1 && f.length <= max));
        assert.equal(decoder.stats.frames, frames.length);
      }),
    );
    const decoder = new SlipDecoder(4);
    assert.deepEqual(decoder.push(Uint8Array.from([0x41, 0x42, 0xc0, 1, 2, 3, 4, 5, 0xc0, 0xc0, 9, 0xdb, 0x00, 7, 0xc0, 0xc0, 8, 0xc0])).map(hex), ['08']);
    assert.deepEqual(decoder.stats, { frames: 1, garbageBytes: 3, badEscapes: 1, oversizeFrames: 1 });
  });

  it('resynchronises at the next 0xC0 0xC0 after starting mid-frame', () => {
    const decoder = new SlipDecoder();
    const stream = Buffer.concat([slipEncode(Uint8Array.of(1, 2, 3)), slipEncode(Uint8Array.of(4, 5))]);
    const frames = decoder.push(new Uint8Array(stream.subarray(2)));
    assert.equal(hex(frames.at(-1) ?? new Uint8Array(0)), '0405');
  });
});

describe('loader packets', () => {
  it('the documented SYNC command and response bytes (esptool docs trace)', () => {
    assert.equal(hex(encodeCommand(Op.SYNC, SYNC_PAYLOAD)), `00082400 00000000 07071220${'55'.repeat(32)}`.replace(/ /g, ''));
    assert.equal(hex(encodeResponse(Op.SYNC, 0x20120707, Uint8Array.of(0, 0))), '0108020007071220' + '0000');
  });

  it('checksum: seed 0xEF XOR every byte of the data to write', () => {
    assert.equal(checksum(new Uint8Array(0)), 0xef);
    assert.equal(checksum(Uint8Array.of(0xef)), 0);
    assert.equal(checksum(Uint8Array.of(1, 2, 4)), 0xef ^ 7);
  });

  it('round trip, and any frame decodes to a packet or a reason (never a throw)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 500 }), fc.integer({ min: 0, max: 0xffffffff }), (op, data, word) => {
        const c = decodeCommand(encodeCommand(op, data, word));
        assert.ok(c.kind === 'packet' && c.packet.op === op && c.packet.checksum === word && hex(c.packet.data) === hex(data));
        const r = decodeResponse(encodeResponse(op, word, data));
        assert.ok(r.kind === 'packet' && r.packet.value === word && hex(r.packet.data) === hex(data));
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (frame) => {
        for (const decoded of [decodeCommand(frame), decodeResponse(frame)]) assert.ok(decoded.kind === 'packet' || typeof decoded.reason === 'string');
      }),
    );
    assert.deepEqual(words(u32le(1, 0xffffffff, 0x12345678)), [1, 0xffffffff, 0x12345678]);
  });
});

/** An emulator on a small flash whose responses are collected and decoded. */
function rig(chip: EmulatedChip = 'ESP32', blocks = 64) {
  const sim = new SimFlash({ blocks });
  const flash = new GuardedFlash(sim);
  const replies: { op: number; value: number; status: number; error: number; data: Uint8Array }[] = [];
  const decoder = new SlipDecoder();
  const emulator = new RomLoaderEmulator({
    chip,
    flash,
    send: (bytes) => {
      for (const frame of decoder.push(bytes)) {
        const r = decodeResponse(frame);
        assert.equal(r.kind, 'packet', 'the emulator sends well-formed responses');
        if (r.kind === 'packet') replies.push({ op: r.packet.op, value: r.packet.value, status: r.packet.data.at(-4) ?? -1, error: r.packet.data.at(-3) ?? -1, data: r.packet.data.subarray(0, r.packet.data.length - 4) });
      }
    },
  });
  const send = (op: number, data: Uint8Array = new Uint8Array(0), sum = 0): Promise<void> => emulator.receive(slipEncode(encodeCommand(op, data, sum)));
  return { flash: sim, guarded: flash, replies, emulator, send };
}

function dataPacket(seq: number, block: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + block.length);
  out.set(u32le(block.length, seq, 0, 0));
  out.set(block, 16);
  return out;
}

describe('ROM loader emulator (fed directly)', () => {
  it('SYNC gets 8 responses; READ_REG gives the chip-detect magic esptool-js maps to each chip', async () => {
    for (const [chip, magic] of [['ESP32', 0x00f01d83], ['ESP32-S3', 0x9], ['ESP32-C3', 0x6921506f]] as const) {
      const { replies, send } = rig(chip);
      await send(Op.SYNC, SYNC_PAYLOAD);
      assert.equal(replies.length, 8);
      assert.ok(replies.every((r) => r.op === Op.SYNC && r.value === SYNC_VALUE && r.status === 0));
      await send(Op.READ_REG, u32le(0x40001000));
      assert.equal(replies.at(-1)?.value, magic);
    }
  });

  it('an uncompressed and a compressed download land at their offset; MD5 answers 32 hex digits; a bad checksum is error 0x07', async () => {
    const { flash, replies, send } = rig();
    await send(Op.SPI_ATTACH, u32le(0, 0));
    const data = Uint8Array.from({ length: 3000 }, (_, i) => (i * 31) & 0xff);
    await send(Op.FLASH_BEGIN, u32le(4096, 3, 0x400, 0x2000));
    for (let seq = 0; seq < 3; seq++) {
      const block = new Uint8Array(0x400).fill(0xff);
      block.set(data.subarray(seq * 0x400, (seq + 1) * 0x400));
      await send(Op.FLASH_DATA, dataPacket(seq, block), checksum(block));
    }
    assert.equal(hex(flash.data.subarray(0x2000, 0x2000 + 3000)), hex(data));
    const deflated = new Uint8Array(deflateSync(data));
    await send(Op.FLASH_DEFL_BEGIN, u32le(3072, 1, 0x400, 0x8000));
    await send(Op.FLASH_DEFL_DATA, dataPacket(0, deflated), checksum(deflated));
    assert.equal(hex(flash.data.subarray(0x8000, 0x8000 + 3000)), hex(data));
    await send(Op.SPI_FLASH_MD5, u32le(0x8000, 3000, 0, 0));
    assert.equal(new TextDecoder().decode(replies.at(-1)?.data), createHash('md5').update(data).digest('hex'));
    assert.ok(replies.every((r) => r.status === 0), 'all accepted');
    await send(Op.FLASH_BEGIN, u32le(4096, 1, 0x400, 0x3000));
    await send(Op.FLASH_DATA, dataPacket(0, new Uint8Array(0x400)), 0x12);
    assert.deepEqual([replies.at(-1)?.status, replies.at(-1)?.error], [1, 0x07]);
  });

  it('stub-only and unknown commands are refused with 0x05, as the ROM refuses them', async () => {
    const { replies, send, emulator } = rig();
    await send(Op.ERASE_REGION, u32le(0, 4096));
    await send(Op.GET_SECURITY_INFO);
    await send(0x77);
    assert.deepEqual(replies.map((r) => [r.status, r.error]), [[1, 5], [1, 5], [1, 5]]);
    assert.equal(emulator.stats.unsupported, 3);
  });

  it('random and mutated command streams never make it throw, and flash is written only in sectors a BEGIN erased', async () => {
    const valid = (): Uint8Array[] => {
      const block = new Uint8Array(0x400).fill(0x5a);
      return [
        encodeCommand(Op.SYNC, SYNC_PAYLOAD),
        encodeCommand(Op.SPI_ATTACH, u32le(0, 0)),
        encodeCommand(Op.SPI_SET_PARAMS, u32le(0, 64 * 4096, 0x10000, 4096, 256, 0xffff)),
        encodeCommand(Op.FLASH_BEGIN, u32le(8192, 2, 0x400, 0x4000)),
        encodeCommand(Op.FLASH_DATA, dataPacket(0, block), checksum(block)),
        encodeCommand(Op.FLASH_DEFL_BEGIN, u32le(4096, 1, 0x400, 0x10000)),
        encodeCommand(Op.FLASH_DEFL_DATA, dataPacket(0, new Uint8Array(deflateSync(block))), checksum(new Uint8Array(deflateSync(block)))),
        encodeCommand(Op.SPI_FLASH_MD5, u32le(0x4000, 0x400, 0, 0)),
        encodeCommand(Op.CHANGE_BAUDRATE, u32le(460800, 0)),
      ];
    };
    const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), kind: fc.constantFrom('set', 'drop', 'insert', 'truncate') });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: 8 }), { maxLength: 20 }), fc.array(mutation, { maxLength: 6 }), fc.uint8Array({ maxLength: 200 }), async (order, mutations, noise) => {
        const { flash, guarded, emulator } = rig('ESP32', 64);
        flash.write(0, new Uint8Array(flash.data.length).fill(0x33));
        const frames = valid();
        let stream: number[] = [...noise, ...order.flatMap((i) => [...slipEncode(frames[i])])];
        for (const m of mutations) {
          if (stream.length === 0) break;
          const at = m.at % stream.length;
          if (m.kind === 'set') stream[at] = m.value;
          else if (m.kind === 'drop') stream.splice(at, 1);
          else if (m.kind === 'insert') stream.splice(at, 0, m.value);
          else stream = stream.slice(0, at);
        }
        await emulator.receive(Uint8Array.from(stream));
        assert.deepEqual(guarded.violations, []);
        assert.ok(!emulator.refusals.some((r) => r.startsWith('internal')), emulator.refusals.join('; '));
        // Sectors no BEGIN erased still hold the fill.
        for (let s = 0; s < 64; s++) if (!guarded.erased.has(s)) assert.ok(flash.data.subarray(s * 4096, (s + 1) * 4096).every((b) => b === 0x33), `sector ${s} untouched`);
      }),
      { numRuns: 200 },
    );
  });

  it('a deflate stream that inflates past the declared size is refused with 0x0B, not written beyond', async () => {
    const { flash, replies, send } = rig();
    await send(Op.SPI_ATTACH, u32le(0, 0));
    const big = new Uint8Array(deflateSync(new Uint8Array(64 * 1024)));
    await send(Op.FLASH_DEFL_BEGIN, u32le(4096, 1, 0x400, 0x1000));
    await send(Op.FLASH_DEFL_DATA, dataPacket(0, big), checksum(big));
    assert.deepEqual([replies.at(-1)?.status, replies.at(-1)?.error], [1, 0x0b]);
    assert.ok(flash.data.subarray(0x2000).every((b) => b === 0xff));
    assert.equal(MAX_LOADER_FRAME, 8 + 0xffff);
  });
});
