/**
 * The Moddable target's adapters other than flash (firmware/targets/moddable/)
 * against emulated modules (tools/xs/moddable-emu/), in Node and in XS:
 * clock wrap, entropy, SHA-256 on Digest and its fallback, the socket
 * stream, system and watchdog, the eFuse floor, boot control round-tripping
 * encrypted otadata through the real codec, the console UART, and
 * `createModdableHal`'s wiring.
 */
import { elapsedMs } from '../../firmware/base/ticks.ts';
import { createNobleCrypto } from '../../firmware/security/noble-crypto.ts';
import { activeCopy, decodeOtaEntry, readOtadata, slotForSeq, stateOfSlot } from '../../firmware/update/otadata.ts';
import type { ByteStreamCallbacks } from '../../firmware/hal/stream.ts';
import { createModdableClock } from '../../firmware/targets/moddable/clock.ts';
import { createModdableCrypto } from '../../firmware/targets/moddable/crypto.ts';
import { createModdableEntropy } from '../../firmware/targets/moddable/entropy.ts';
import { createModdableConnector } from '../../firmware/targets/moddable/stream.ts';
import { createModdableSystem, createModdableWatchdog } from '../../firmware/targets/moddable/system.ts';
import { createModdableSecurityFloor } from '../../firmware/targets/moddable/security-floor.ts';
import { createModdableHal, type ModdableHal } from '../../firmware/targets/moddable/hal.ts';
import { createLineLog } from '../../firmware/targets/moddable/log.ts';
import { openConsoleUart, type ConsoleUartOptions } from '../../firmware/targets/moddable/serial.ts';
import { createEmuModdable, EmuTime, type EmuModdable, type EmuPartition } from '../../tools/xs/moddable-emu/index.ts';
import type { CuttableFlash } from '../../tools/sim/power-cut.ts';
import { bytesEqual, equal, ok, throws } from '../support/check.ts';
import { garbage, throwsCode } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';

type Code = Error & { readonly code: string };

function emuOnly(options: Parameters<typeof createEmuModdable>[0] = { partitions: {} }): EmuModdable {
  return createEmuModdable(options);
}

const clockWrap: FirmwareCase = {
  name: 'clock: Time.ticks (signed 32-bit on ESP32) becomes unsigned ticks that wrap at 2^32',
  run() {
    const time = new EmuTime(0x7fff_fff0);
    const clock = createModdableClock(time);
    const before = clock.ticks();
    equal(before, 0x7fff_fff0, 'below 2^31');
    time.ms += 0x20;
    ok(time.ticks < 0, `the module reads negative past 2^31 (${time.ticks})`);
    const after = clock.ticks();
    equal(after, 0x8000_0010, 'the adapter reads it unsigned');
    equal(elapsedMs(before, after), 0x20, 'elapsed across 2^31');
    time.ms = 0xffff_fff8;
    const nearWrap = clock.ticks();
    equal(nearWrap, 0xffff_fff8, 'just below 2^32');
    time.ms += 0x10;
    const wrapped = clock.ticks();
    equal(wrapped, 8, 'past 2^32: back near 0');
    equal(elapsedMs(nearWrap, wrapped), 0x10, 'elapsed across the wrap');
    for (const ms of [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 0x1_2345_6789]) {
      time.ms = ms;
      const t = clock.ticks();
      ok(Number.isInteger(t) && t >= 0 && t < 0x1_0000_0000, `ticks ${t} at ${ms} ms is an unsigned 32-bit value`);
      equal(t, ms % 0x1_0000_0000, `ticks at ${ms} ms`);
    }
  },
};

const entropyCase: FirmwareCase = {
  name: 'entropy: fill goes to esp_fill_random (glue fillRandom), views included',
  run() {
    const emu = emuOnly({ partitions: {}, randomSeed: 99 });
    const entropy = createModdableEntropy(emu.modules.native);
    const backing = new Uint8Array(48);
    const view = backing.subarray(8, 40);
    entropy.fill(view);
    equal(emu.native.randomBytes, 32, 'bytes asked of the RNG');
    ok(backing.subarray(0, 8).every((b) => b === 0) && backing.subarray(40).every((b) => b === 0), 'only the view was filled');
    ok(view.some((b) => b !== 0), 'the view holds random bytes');
    entropy.fill(new Uint8Array(0));
    equal(emu.native.randomBytes, 32, 'an empty fill asks nothing');
    throws(() => entropy.fill([0] as unknown as Uint8Array), 'TypeError', 'not a Uint8Array');
  },
};

function sha256Case(kind: 'native' | 'absent' | 'failing'): FirmwareCase {
  return {
    name: `crypto: SHA-256 ${kind === 'native' ? 'on Moddable\'s Digest' : kind === 'absent' ? 'falls back to noble without a crypt module' : 'falls back to noble when Digest throws'}, same digests`,
    run() {
      const emu = emuOnly({ partitions: {}, digest: kind });
      const crypto = createModdableCrypto(emu.modules.Digest);
      equal(crypto.sha256Engine, kind === 'native' ? 'native' : 'noble', 'engine');
      const reference = createNobleCrypto();
      const message = garbage(1000, 5);
      for (const split of [0, 1, 64, 999]) {
        const hash = crypto.createSha256();
        // Views with an offset: the module must hash only the view.
        hash.update(message.subarray(0, split));
        hash.update(message.subarray(split));
        const expected = reference.createSha256();
        expected.update(message);
        bytesEqual(hash.digest(), expected.digest(), `digest, split at ${split}`);
      }
      if (kind === 'native') ok(emu.digest.bytes >= 4000, `the native digest hashed the bytes (${emu.digest.bytes})`);
      else equal(emu.digest.bytes, 0, 'no native hashing');
      const done = crypto.createSha256();
      done.digest();
      throws(() => done.update(new Uint8Array(1)), 'Error', 'update after digest');
      throws(() => done.digest(), 'Error', 'digest twice');
      // The rest is noble's: HMAC agrees with the reference.
      bytesEqual(crypto.hmacSha256(message.subarray(0, 32), message), reference.hmacSha256(message.subarray(0, 32), message), 'HMAC');
    },
  };
}

interface Recorded {
  readonly events: string[];
  readonly callbacks: ByteStreamCallbacks;
}

function recorder(): Recorded {
  const events: string[] = [];
  return {
    events,
    callbacks: {
      onReadable: (n) => events.push(`readable ${n}`),
      onWritable: (n) => events.push(`writable ${n}`),
      onError: (reason) => events.push(`error ${reason}`),
    },
  };
}

const streamCase: FirmwareCase = {
  name: 'stream: socket messages become the HAL callbacks; bytes in and out; backpressure; close',
  run() {
    const emu = emuOnly();
    const connector = createModdableConnector({ Socket: emu.modules.Socket });
    const { events, callbacks } = recorder();
    const stream = connector.connect('broker.example', 8883, callbacks);
    equal(emu.sockets.sockets.length, 1, 'one socket');
    const socket = emu.sockets.sockets[0];
    equal(socket.options.host, 'broker.example', 'host');
    equal(socket.options.port, 8883, 'port');
    equal(socket.tls, false, 'plain TCP');
    equal(events.length, 0, 'no callback inside connect');
    socket.connected();
    equal(events.join(','), 'writable 1460', 'connected: the first onWritable with the room');
    socket.receive([1, 2, 3, 4, 5]);
    equal(events[1], 'readable 5', 'readable with the count');
    const small = new Uint8Array(3);
    equal(stream.read(small), 3, 'a read fills the buffer');
    bytesEqual(small, new Uint8Array([1, 2, 3]), 'first bytes');
    const rest = new Uint8Array(10);
    equal(stream.read(rest), 2, 'the rest');
    bytesEqual(rest.subarray(0, 2), new Uint8Array([4, 5]), 'last bytes');
    equal(stream.read(rest), 0, 'nothing left: 0, no throw');
    const left = stream.write(new Uint8Array([9, 8, 7]));
    equal(left, 1457, 'write returns the room left');
    equal(socket.written.join(','), '9,8,7', 'bytes reached the socket');
    socket.room(4);
    equal(events[events.length - 1], 'writable 4', 'writable with the room');
    const overflow = throwsCode<Code>(() => stream.write(new Uint8Array(5)), 'TargetError', 'write-overflow', 'more than the room');
    ok(overflow.message.includes('room for 4'), overflow.message);
    equal(socket.written.length, 3, 'an overflowing write writes nothing');
    equal(stream.write(new Uint8Array(4)), 0, 'exactly the room');
    socket.disconnect();
    equal(events[events.length - 1], 'error disconnected', 'disconnect is onError');
    ok(socket.closed, 'the socket was closed');
    const count = events.length;
    socket.receive([1]);
    socket.fail();
    equal(events.length, count, 'no callback after the error');
    throwsCode<Code>(() => stream.read(new Uint8Array(1)), 'TargetError', 'closed', 'read after the error');
    throwsCode<Code>(() => stream.write(new Uint8Array(1)), 'TargetError', 'closed', 'write after the error');
    stream.close();

    const second = recorder();
    const s2 = connector.connect('10.0.0.2', 1883, second.callbacks);
    emu.sockets.sockets[1].connected();
    emu.sockets.sockets[1].fail();
    equal(second.events.join(','), 'writable 1460,error error', 'a socket error is onError("error")');
    s2.close();

    const third = recorder();
    const s3 = connector.connect('10.0.0.3', 1883, third.callbacks);
    s3.close();
    ok(emu.sockets.sockets[2].closed, 'close closes the socket');
    emu.sockets.sockets[2].connected();
    equal(third.events.length, 0, 'no callback after close');
    s3.close();

    throws(() => connector.connect('', 1883, recorder().callbacks), 'TypeError', 'empty host');
    throws(() => connector.connect('h', 0, recorder().callbacks), 'RangeError', 'port 0');
    throws(() => connector.connect('h', 65536, recorder().callbacks), 'RangeError', 'port 65536');
  },
};

const tlsCase: FirmwareCase = {
  name: 'stream: TLS connects through SecureSocket with the secure dictionary; refused without it',
  run() {
    const emu = emuOnly();
    const secure = { protocolVersion: 0x303, trustedCA: 'fleet' };
    const tls = createModdableConnector({ Socket: emu.modules.Socket, SecureSocket: emu.modules.SecureSocket, tls: secure });
    tls.connect('broker.example', 8883, recorder().callbacks);
    const socket = emu.sockets.sockets[0];
    equal(socket.tls, true, 'SecureSocket');
    equal(socket.options.secure, secure, 'the secure dictionary is passed as given');
    const noTls = createModdableConnector({ Socket: emu.modules.Socket, tls: secure });
    throwsCode<Code>(() => noTls.connect('broker.example', 8883, recorder().callbacks), 'TargetError', 'no-tls', 'TLS without securesocket');
    equal(emu.sockets.sockets.length, 1, 'no plain socket instead');
  },
};

const systemCase: FirmwareCase = {
  name: 'system: reset reasons from the glue, unknown strings read "unknown"; restart logs and does not return',
  run() {
    const emu = emuOnly();
    const logged: string[] = [];
    const system = createModdableSystem(emu.modules.native, (reason) => logged.push(reason));
    for (const reason of ['power-on', 'software', 'watchdog', 'panic', 'brownout', 'unknown'] as const) {
      emu.native.resetReasonValue = reason;
      equal(system.lastResetReason(), reason, reason);
    }
    emu.native.resetReasonValue = 'deep-sleep';
    equal(system.lastResetReason(), 'unknown', 'a reason the HAL does not name');
    const reset = throws(() => system.restart('rollback: test'), 'EmuReset', 'restart');
    equal((reset as Error & { kind: string }).kind, 'restart', 'esp_restart');
    equal(emu.native.restarts, 1, 'one restart');
    equal(logged.join(','), 'rollback: test', 'the reason was logged first');
    const returning = createModdableSystem({ ...emu.modules.native, restart: () => {} });
    throwsCode<Code>(() => returning.restart('x'), 'TargetError', 'restart-returned', 'a restart that returns');
  },
};

const watchdogCase: FirmwareCase = {
  name: 'watchdog: the deadline is kept with Timer; unfed it expires into a task watchdog reset',
  run() {
    const emu = emuOnly({ partitions: {}, watchdogTimeoutMs: 10_000 });
    const watchdog = createModdableWatchdog(emu.modules.native, emu.timer);
    equal(watchdog.builtTimeoutMs, 10_000, 'the built timeout');
    equal(watchdog.armed, false, 'not armed at first');
    watchdog.arm(3000);
    ok(watchdog.armed, 'armed');
    equal(emu.native.feeds, 1, 'arming feeds the task watchdog');
    emu.timer.advance(2999);
    equal(emu.native.expiries, 0, 'not before the deadline');
    watchdog.feed();
    equal(emu.native.feeds, 2, 'feed resets the task watchdog');
    emu.timer.advance(2999);
    equal(emu.native.expiries, 0, 'a feed moves the deadline');
    watchdog.disarm();
    emu.timer.advance(100_000);
    equal(emu.native.expiries, 0, 'disarmed: no expiry');
    equal(emu.timer.pending, 0, 'disarm cleared the timer');
    watchdog.feed();
    equal(emu.timer.pending, 0, 'feeding a disarmed watchdog schedules nothing');
    watchdog.arm(20_000);
    watchdog.arm(5000);
    equal(emu.timer.pending, 1, 're-arming replaces the timer');
    const reset = throws(() => emu.timer.advance(5000), 'EmuReset', 'expiry');
    equal((reset as Error & { kind: string }).kind, 'watchdog', 'a task watchdog reset');
    equal(emu.native.expiries, 1, 'expired once');
    equal(createModdableSystem(emu.modules.native).lastResetReason(), 'watchdog', 'the next boot reports "watchdog"');
    equal(watchdog.armed, false, 'expired: no longer armed');
    for (const bad of [0, -1, 1.5, Number.NaN]) throws(() => watchdog.arm(bad), 'RangeError', `timeout ${bad}`);
  },
};

const floorCase: FirmwareCase = {
  name: 'security floor: the eFuse through the glue, only raised, absent without anti-rollback',
  run() {
    const off = emuOnly({ partitions: {}, secureVersion: -1 });
    const none = createModdableSecurityFloor(off.modules.native);
    equal(none.antiRollback, false, 'not built in');
    equal(none.secureVersion, 0, 'eFuse part of the floor is 0');
    none.raise(4);
    equal(off.native.raises.length, 0, 'nothing burnt');
    const on = emuOnly({ partitions: {}, secureVersion: 2 });
    const floor = createModdableSecurityFloor(on.modules.native);
    equal(floor.antiRollback, true, 'built in');
    equal(floor.secureVersion, 2, 'read from the eFuse');
    floor.raise(2);
    floor.raise(1);
    equal(on.native.raises.length, 0, 'never burns at or below the floor');
    floor.raise(5);
    equal(on.native.raises.join(','), '5', 'burns above');
    equal(floor.secureVersion, 5, 'new floor');
    throws(() => floor.raise(-1), 'RangeError', 'negative');
    throws(() => floor.raise(1.5), 'RangeError', 'fraction');
  },
};

const OTA_SLOT_BLOCKS = 2;

interface Device {
  readonly otadata: CuttableFlash;
  readonly ota0: CuttableFlash;
  readonly ota1: CuttableFlash;
  readonly counter: CuttableFlash;
}

function device(env: CaseEnv): Device {
  return {
    otadata: env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' }),
    ota0: env.createFlash({ blocks: OTA_SLOT_BLOCKS, blockLength: 4096, mode: 'strict' }),
    ota1: env.createFlash({ blocks: OTA_SLOT_BLOCKS, blockLength: 4096, mode: 'strict' }),
    counter: env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' }),
  };
}

/** One boot of the device: the emulated modules over its partitions (all encrypted, as with flash encryption on), running `running`. */
function boot(d: Device, running: string, canBootSlot?: (slot: 0 | 1) => boolean): { emu: EmuModdable; hal: ModdableHal; lines: string[] } {
  const partitions: Record<string, EmuPartition> = {
    otadata: { flash: d.otadata, encrypted: true },
    ota_0: { flash: d.ota0, encrypted: true },
    ota_1: { flash: d.ota1, encrypted: true },
    hf_counter: { flash: d.counter, encrypted: true },
  };
  const emu = createEmuModdable({ partitions, runningPartition: running });
  const lines: string[] = [];
  const hal = createModdableHal(emu.modules, { writeLine: (line) => lines.push(line), console: { baud: 115200, port: 1, receive: 16, transmit: 17 }, ...(canBootSlot === undefined ? {} : { canBootSlot }) });
  return { emu, hal, lines };
}

const bootControlCase: FirmwareCase = {
  name: 'boot control: otadata round-trips through the real codec over the encrypted adapter (trial, confirm, reject)',
  run(env) {
    const d = device(env);
    let { emu, hal } = boot(d, 'ota_0');
    equal(hal.runningSlot, 0, 'running slot from the running partition');
    equal(hal.otadata.status().writeAlign, 16, 'otadata is encrypted: 16-byte units');
    // Blank (erased) otadata: both copies erased, which the codec can only see because erased units read 0xFF.
    const blank = readOtadata(hal.otadata);
    ok(blank.every((r) => r.seq === 0xffffffff), 'erased copies read as blank seq');
    throwsCode<Code>(() => hal.bootControl.runningState(), 'TargetError', 'boot-state-unknown', 'no copy for the running slot');
    hal.bootControl.requestTrial(0);
    equal(hal.bootControl.runningState(), 'new', 'trial requested for the running slot');
    hal.bootControl.confirmRunning();
    equal(hal.bootControl.runningState(), 'valid', 'confirmed');
    // At rest the entry is ciphertext; decrypted it is the codec's entry.
    const raw = new Uint8Array(32);
    emu.modules.native.readPartitionRaw('otadata', 0, raw);
    const decrypted = new Uint8Array(32);
    emu.modules.flash.open({ path: 'otadata' }).read(decrypted, 0);
    const entry = decodeOtaEntry(decrypted);
    ok(entry.crcOk && entry.seq === 1 && entry.state === 'valid', `copy 0 decrypts to seq 1 VALID (seq ${entry.seq}, ${entry.state})`);
    ok(!raw.every((b, i) => b === decrypted[i]), 'stored encrypted');
    // Write an image marker into the other slot through the adapter's slot view ("nextota").
    const marker = garbage(32, 3);
    hal.slots[1].eraseBlock(0);
    hal.slots[1].write(0, marker);
    const markerBack = new Uint8Array(32);
    emu.modules.flash.open({ path: 'nextota' }).read(markerBack, 0);
    bytesEqual(markerBack, marker, 'slots[1] is the other slot (nextota)');
    hal.bootControl.requestTrial(1);
    const readings = readOtadata(hal.otadata);
    const active = activeCopy(readings);
    ok(active !== undefined && slotForSeq(readings[active].seq) === 1, 'the active copy names slot 1');
    equal(stateOfSlot(readings, 1), 'new', 'slot 1 NEW');
    throwsCode<Code>(() => hal.bootControl.confirmRunning(), 'TargetError', 'not-active', 'slot 0 cannot confirm while slot 1 is active');
    // The bootloader boots slot 1: a fresh instance, running ota_1.
    ({ emu, hal } = boot(d, 'ota_1', (slot) => slot === 0));
    equal(hal.runningSlot, 1, 'running slot 1');
    equal(hal.bootControl.runningState(), 'new', 'slot 1 in its trial');
    const slot1 = new Uint8Array(32);
    hal.slots[1].read(0, slot1);
    bytesEqual(slot1, marker, 'slots[1] is ota_1 (now "running"), which holds the marker');
    const slot0 = new Uint8Array(32);
    hal.slots[0].read(0, slot0);
    ok(slot0.every((b) => b === 0xff), 'slots[0] is ota_0 (now "nextota"): never written, reads 0xFF through the adapter');
    throws(() => hal.slots[1].write(0, new Uint8Array(16)), 'Error', 'the running slot is read-only', 'read-only');
    throws(() => hal.slots[1].eraseBlock(0), 'Error', 'the running slot cannot be erased', 'read-only');
    hal.bootControl.rejectRunning();
    const after = readOtadata(hal.otadata);
    equal(stateOfSlot(after, 1), 'invalid', 'slot 1 INVALID');
    const fallback = activeCopy(after);
    ok(fallback !== undefined && slotForSeq(after[fallback].seq) === 0, 'the bootloader falls back to slot 0');
    // Refused when the other slot cannot boot.
    const d2 = device(env);
    let second = boot(d2, 'ota_0');
    second.hal.bootControl.requestTrial(0);
    second.hal.bootControl.confirmRunning();
    second.hal.bootControl.requestTrial(1);
    second = boot(d2, 'ota_1');
    const refused = throws(() => second.hal.bootControl.rejectRunning(), 'OtadataError', 'default canBootSlot refuses');
    equal((refused as Code).code, 'rollback-impossible', 'rollback-impossible');
    equal(second.hal.bootControl.runningState(), 'new', 'nothing written');
  },
};

const halCase: FirmwareCase = {
  name: 'createModdableHal: partitions by label once, unknown labels undefined, app slots only as slots, default actuator refuses, log lines',
  run(env) {
    const d = device(env);
    const { hal, lines, emu } = boot(d, 'ota_0');
    const counter = hal.partition('hf_counter');
    ok(counter !== undefined, 'counter opens');
    equal(hal.partition('hf_counter'), counter, 'the same object the second time');
    equal(counter.status().writeAlign, 16, 'an encrypted data partition: strict');
    equal(hal.partition('hf_nosuch'), undefined, 'a label the table lacks');
    equal(hal.partition('otadata'), hal.otadata, 'otadata is the boot control\'s');
    equal(hal.partition('ota_0'), hal.slots[0], 'ota_0 by label is slot 0 (the module cannot open app partitions by label)');
    equal(hal.partition('ota_1'), hal.slots[1], 'ota_1 by label is slot 1');
    throws(() => emu.modules.flash.open({ path: 'ota_0' }), 'Error', 'the emulated module, as ESP32\'s, does not open app partitions by label', "can't find partition");
    throws(() => hal.partition('running'), 'RangeError', 'running is a slot');
    throws(() => hal.partition(''), 'TypeError', 'empty label');
    const opens = emu.flash.opens.filter((l) => l === 'hf_counter').length;
    equal(opens, 1, 'opened once');
    throwsCode<Code>(() => hal.actuator.apply({ kind: 'set-output', target: 'output-0', value: 1 }, 1), 'TargetError', 'no-actuator', 'no actuator');
    hal.log.write('warn', 'boot', 'hello', { a: 1, b: 'x', c: true });
    equal(lines[lines.length - 1], 'warn boot: hello {"a":1,"b":"x","c":true}\n', 'log line');
    createLineLog((line) => lines.push(line)).write('info', 'x', 'no fields');
    equal(lines[lines.length - 1], 'info x: no fields\n', 'without fields');
    equal(hal.crypto.sha256Engine, 'native', 'native SHA-256 when crypt is there');
    throwsCode<Code>(() => createModdableHal(createEmuModdable({ partitions: { otadata: { flash: d.otadata, encrypted: true } }, runningPartition: 'factory' }).modules, { writeLine: () => {} }), 'TargetError', 'unknown-running-partition', 'a factory app');
  },
};

const consoleCase: FirmwareCase = {
  name: 'console UART: a byte stream over embedded:io/serial (bytes, room, overflow, error once)',
  run(env) {
    const { hal, emu } = boot(device(env), 'ota_0');
    const { events, callbacks } = recorder();
    const stream = hal.openConsole(callbacks);
    const port = emu.serialPorts[0];
    equal(port.options.baud, 115200, 'baud');
    equal(port.options.port, 1, 'UART 1');
    equal(port.options.receive, 16, 'RX pin');
    equal(port.options.transmit, 17, 'TX pin');
    equal(port.options.format, 'buffer', 'buffer format');
    throwsCode<Code>(() => stream.write(new Uint8Array(1)), 'TargetError', 'write-overflow', 'no room reported yet');
    port.drain(16);
    equal(events.join(','), 'writable 16', 'onWritable');
    equal(stream.write(new Uint8Array([0x68, 0x69, 0x0a])), 13, 'room left');
    equal(port.transmitted.join(','), '104,105,10', 'transmitted');
    port.arrive([0x73, 0x0a]);
    equal(events[1], 'readable 2', 'onReadable');
    const into = new Uint8Array(8);
    equal(stream.read(into), 2, 'read');
    equal(into[0], 0x73, 'byte');
    port.fail();
    port.fail();
    equal(events.filter((e) => e.startsWith('error')).length, 1, 'error once');
    throwsCode<Code>(() => stream.read(into), 'TargetError', 'closed', 'read after the error');
    stream.close();
    const noConsole = createModdableHal(createEmuModdable({ partitions: { otadata: { flash: env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' }), encrypted: true }, ota_0: { flash: env.createFlash({ blocks: 1, blockLength: 4096 }), encrypted: false }, ota_1: { flash: env.createFlash({ blocks: 1, blockLength: 4096 }), encrypted: false } } }).modules, { writeLine: () => {} });
    throws(() => noConsole.openConsole(recorder().callbacks), 'TypeError', 'no console options');
    const Serial = emu.modules.Serial;
    ok(Serial !== undefined, 'serial module');
    throws(() => openConsoleUart(Serial, { baud: 115200 } as unknown as ConsoleUartOptions, recorder().callbacks), 'RangeError', 'no pins (the module would throw "invalid")');
    throws(() => openConsoleUart(Serial, { baud: 0, receive: 3, transmit: 1 }, recorder().callbacks), 'RangeError', 'baud 0');
  },
};

export const suite: CaseSuite = {
  name: 'moddable target: adapters',
  cases: [clockWrap, entropyCase, sha256Case('native'), sha256Case('absent'), sha256Case('failing'), streamCase, tlsCase, systemCase, watchdogCase, floorCase, bootControlCase, halCase, consoleCase],
};
