/**
 * firmware/targets/moddable/device.ts as the device runs it: its imports of
 * the Moddable SDK's module names (`embedded:storage/flash`, `time`, `timer`,
 * `socket`, `securesocket`, `crypt`, `embedded:io/serial`, `holdfast-native`)
 * resolve to the by-name emulations (tools/xs/moddable-emu/named/; a resolve
 * hook in Node, an esbuild plugin for XS: moddable-device.test.ts), so the
 * real import statements and export shapes are exercised, not only the
 * adapters' logic.
 */
import { bootDevice, createDeviceHal, deviceModules, linkCheckDeadlines, startRuntime, withBoardUpdate } from '../../firmware/targets/moddable/device.ts';
import { ConsoleDecoder, encodeConsoleFrame, type ConsoleFrame } from '../../firmware/protocol/console/index.ts';
import { consoleDeviceId } from '../../firmware/runtime/console-target.ts';
import { ESP_CHIPS } from '../../firmware/update/esp-app-image.ts';
import { EmuReset } from '../../tools/xs/moddable-emu/index.ts';
import { TeeLog } from '../../firmware/targets/moddable/run.ts';
import { auditSummary, partsOf } from '../runtime/runtime-world.ts';
import { trialDevice } from '../runtime/trial-world.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { TEST_DEVICE_ID } from '../support/test-device.ts';
import { PARTITION_LABELS, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { deviceConfig, flashOptions, makeFleet, provision, RecordingActuator, type Fleet } from '../runtime/runtime-world.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { createEmuModdable, type EmuModdable } from '../../tools/xs/moddable-emu/index.ts';
import { installEmuModdable } from '../../tools/xs/moddable-emu/installed.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { bootProvisionedDevice } from '../../firmware/targets/moddable/device.ts';
import { provisioningImage, PROVISIONING_PARTITION_LABEL } from '../../firmware/security/provisioning.ts';
import { failureBit } from '../../firmware/runtime/boot.ts';
import { SafeModeStore } from '../../firmware/runtime/safe-mode.ts';
import { RevocationStore } from '../../firmware/security/revocation-store.ts';
import { SAMPLE_BROKER_PASSWORD, sampleIdentity } from '../security/provisioning.cases.ts';

function install(env: CaseEnv, running: 'ota_0' | 'ota_1'): EmuModdable {
  const strict = () => env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' });
  const emu = createEmuModdable({
    partitions: {
      otadata: { flash: strict(), encrypted: true },
      ota_0: { flash: strict(), encrypted: true },
      ota_1: { flash: strict(), encrypted: true },
      hf_counter: { flash: strict(), encrypted: true },
    },
    runningPartition: running,
    secureVersion: 1,
    watchdogTimeoutMs: 5000,
    startMs: 0xffff_fff0,
  });
  installEmuModdable(emu);
  return emu;
}

/** The emulated partitions of a provisioned runtime flash (its labels), plus `extra`. */
function runtimePartitions(flash: FlashPartition, extra: Record<string, { flash: FlashPartition; encrypted: boolean }>): Record<string, { flash: FlashPartition; encrypted: boolean }> {
  const parts = partsOf(flash);
  const out: Record<string, { flash: FlashPartition; encrypted: boolean }> = { ...extra };
  for (const [key, label] of Object.entries(PARTITION_LABELS)) {
    const part = parts[key as PartitionKey];
    if (part !== undefined && out[label] === undefined) out[label] = { flash: part, encrypted: false };
  }
  return out;
}

/** Every frame written on the emulated UART so far. */
function uartFrames(port: { readonly transmitted: readonly number[] }): ConsoleFrame[] {
  const frames: ConsoleFrame[] = [];
  new ConsoleDecoder().push(Uint8Array.from(port.transmitted), (f) => frames.push(f));
  return frames;
}

function provisioned(env: CaseEnv, fleet: Fleet): FlashPartition {
  const big = env.createFlash(flashOptions('plain'));
  provision(big, fleet);
  return big;
}

function runtimeSlots(hal: { partition(label: string): unknown; readonly slots: readonly unknown[] }): string {
  return [PARTITION_LABELS.ota0, PARTITION_LABELS.ota1].filter((label, i) => hal.partition(label) === hal.slots[i]).join(',');
}

export const suite: CaseSuite = {
  name: 'moddable target: device.ts over the modules by name',
  cases: [
    {
      name: 'the imported modules have the shapes the adapters take (default and named exports as the SDK has them)',
      run(env) {
        const emu = install(env, 'ota_0');
        const modules = deviceModules();
        equal(typeof modules.flash.open, 'function', 'embedded:storage/flash default export has open');
        equal(typeof modules.time.ticks, 'number', 'time default export has ticks');
        equal(typeof modules.timer.set, 'function', 'timer default export has set');
        equal(typeof modules.Socket, 'function', 'socket exports Socket');
        equal(typeof modules.SecureSocket, 'function', 'securesocket default export');
        equal(typeof modules.Digest, 'function', 'crypt exports Digest');
        equal(typeof modules.Serial, 'function', 'embedded:io/serial default export');
        equal(modules.native.runningPartition(), 'ota_0', 'holdfast-native namespace');
        equal(typeof startRuntime, 'function', 'device.ts re-exports startRuntime');
        ok(emu.flash.opens.length === 0, 'importing opened nothing');
        installEmuModdable(undefined);
      },
    },
    {
      name: 'createDeviceHal: flash by label, boot control, clock across the wrap, entropy, native SHA-256, TLS stream, watchdog, floor',
      run(env) {
        const emu = install(env, 'ota_1');
        const lines: string[] = [];
        const hal = createDeviceHal({ writeLine: (line) => lines.push(line), tls: { protocolVersion: 0x303 }, canBootSlot: () => true });
        equal(hal.runningSlot, 1, 'running slot from holdfast-native');
        const counterFlash = hal.partition('hf_counter');
        ok(counterFlash !== undefined, 'a data partition by label');
        equal(counterFlash.status().writeAlign, 16, 'encrypted: strict units');
        Counter.format(counterFlash);
        const counter = Counter.open(counterFlash);
        equal(counter.next(), 1, 'a Counter over the device flash');
        equal(Counter.open(counterFlash).next() > 1, true, 'and after a reopen');
        hal.bootControl.requestTrial(1);
        equal(stateOfSlot(readOtadata(hal.otadata), 1), 'new', 'otadata written through the by-name flash module');
        const t0 = hal.clock.ticks();
        emu.time.ms += 0x20;
        equal((hal.clock.ticks() - t0) >>> 0, 0x20, 'clock across 2^32 via time');
        const random = new Uint8Array(16);
        hal.entropy.fill(random);
        ok(random.some((b) => b !== 0), 'entropy via holdfast-native');
        equal(hal.crypto.sha256Engine, 'native', 'Digest via crypt');
        const events: string[] = [];
        hal.connector.connect('broker.example', 8883, { onReadable: (n) => events.push(`r${n}`), onWritable: (n) => events.push(`w${n}`), onError: (e) => events.push(e) });
        const socket = emu.sockets.sockets[0];
        equal(socket.tls, true, 'TLS through securesocket');
        socket.connected();
        equal(events.join(','), 'w1460', 'first onWritable');
        hal.watchdog.arm(1000);
        throws(() => emu.timer.advance(1000), 'EmuReset', 'the unfed watchdog resets via timer and holdfast-native');
        equal(emu.native.resetReason(), 'watchdog', 'reset reason after it');
        equal(hal.floor.secureVersion, 1, 'eFuse floor');
        hal.floor.raise(3);
        equal(hal.floor.secureVersion, 3, 'raised');
        hal.log.write('info', 'boot', 'ok');
        equal(lines[0], 'info boot: ok\n', 'log line');
        // Without a writeLine the log goes to Moddable's trace, which these engines lack: writing must not throw.
        createDeviceHal().log.write('info', 'boot', 'to trace');
        installEmuModdable(undefined);
      },
    },
    {
      name: 'bootDevice: the real runtime boots over the Moddable adapters (partitions by its labels, MQTT CONNECT on the emulated socket); unprovisioned, it does not start',
      run(env) {
        const fleet = makeFleet();
        const big = env.createFlash(flashOptions('plain'));
        const parts = provision(big, fleet);
        const strict = () => env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' });
        const partitions: Record<string, { flash: FlashPartition; encrypted: boolean }> = {
          otadata: { flash: strict(), encrypted: true },
          ota_0: { flash: strict(), encrypted: true },
          ota_1: { flash: strict(), encrypted: true },
        };
        for (const [key, label] of Object.entries(PARTITION_LABELS)) {
          const part = parts[key as PartitionKey];
          if (part !== undefined) partitions[label] = { flash: part, encrypted: false };
        }
        const emu = createEmuModdable({ partitions, runningPartition: 'ota_0', startMs: 0xffff_ff00 });
        installEmuModdable(emu);
        const lines: string[] = [];
        const actuator = new RecordingActuator();
        const { hal, runtime } = bootDevice(deviceConfig(fleet), { writeLine: (line) => lines.push(line), actuator });
        ok(runtime !== undefined, 'the runtime started');
        const status = runtime.status();
        equal(status.mode, 'normal', `normal mode (failures: ${status.failures.map((f) => f.code).join(', ')})`);
        equal(status.resetReason, 'power-on', 'reset reason from holdfast-native');
        equal(status.runningSlot, 0, 'running slot from the glue');
        for (let i = 0; i < 5 && emu.sockets.sockets.length === 0; i++) {
          emu.time.ms += 50;
          runtime.service(hal.clock.ticks());
        }
        equal(emu.sockets.sockets.length, 1, 'the telemetry link opened a socket');
        const socket = emu.sockets.sockets[0];
        equal(socket.options.host, 'broker.test', 'broker host');
        equal(socket.options.port, 1883, 'broker port');
        socket.connected();
        runtime.service(hal.clock.ticks());
        ok(socket.written.length > 0 && socket.written[0] === 0x10, `an MQTT CONNECT went out (first byte ${String(socket.written[0])})`);
        ok(emu.flash.opens.includes(PARTITION_LABELS.counter), 'the runtime opened its counter by label through the flash module');
        equal(runtimeSlots(hal), 'ota_0,ota_1', 'the runtime\'s slot labels are the HAL\'s slots');

        const bare = createEmuModdable({ partitions: { otadata: { flash: strict(), encrypted: true }, ota_0: { flash: strict(), encrypted: true }, ota_1: { flash: strict(), encrypted: true } } });
        installEmuModdable(bare);
        const unprovisioned: string[] = [];
        const booted = bootDevice(undefined, { writeLine: (line) => unprovisioned.push(line) });
        equal(booted.runtime, undefined, 'no runtime without provisioning');
        ok(unprovisioned.some((l) => l.startsWith('error boot: not provisioned')), unprovisioned.join(''));
        equal(bare.sockets.sockets.length, 0, 'nothing connected');
        installEmuModdable(undefined);
      },
    },
    {
      name: 'the board\'s update settings: the trial\'s link checks on, deadlines from the task watchdog (12 and 24 periods); a config\'s own update section and link checks are kept; an unknown chip is refused',
      run() {
        const fleet = makeFleet();
        const board = { board: 'esp32-devkitc', chip: 'esp32', watchdogTimeoutMs: 5000 };
        equal(JSON.stringify(linkCheckDeadlines(5000)), '{"brokerReachedMs":60000,"firstReceiptMs":120000}', 'a 5 s watchdog');
        const update = withBoardUpdate(deviceConfig(fleet), board).update;
        ok(update !== undefined, 'an update section for the board');
        equal(`${update.boardId}:${update.chip.name}:${update.watchdogTimeoutMs}`, 'esp32-devkitc:esp32:5000', 'board, chip, watchdog');
        equal(`${update.linkChecks?.brokerReachedMs}:${update.linkChecks?.firstReceiptMs}`, '60000:120000', 'link checks on');
        const own = withBoardUpdate(deviceConfig(fleet, { update: { boardId: 'x', chip: ESP_CHIPS.esp32s3, watchdogTimeoutMs: 3000, linkChecks: { brokerReachedMs: 1, firstReceiptMs: 2 } } }), board).update;
        equal(`${own?.boardId}:${own?.linkChecks?.brokerReachedMs}`, 'x:1', 'the config\'s own kept');
        const noChecks = withBoardUpdate(deviceConfig(fleet, { update: { boardId: 'y', chip: ESP_CHIPS.esp32, watchdogTimeoutMs: 3000 } }), undefined).update;
        equal(noChecks?.linkChecks?.brokerReachedMs, 36_000, 'without a board: from the config\'s trial watchdog');
        equal(withBoardUpdate(deviceConfig(fleet), undefined).update, undefined, 'no board, no update section: none');
        throws(() => withBoardUpdate(deviceConfig(fleet), { ...board, chip: 'esp8266' }), 'RangeError', 'unknown chip');
        throws(() => linkCheckDeadlines(0), 'RangeError', 'no watchdog');
      },
    },
    {
      name: 'bootDevice serves the serial console on the console UART: hello, a status command answered from the runtime, frames longer than the UART\'s room go out whole as room is reported; the Timer services the runtime; a locked reboot is refused; the runtime\'s log goes to the console too',
      run(env) {
        const fleet = makeFleet();
        const big = provisioned(env, fleet);
        const strict = () => env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' });
        const emu = createEmuModdable({ partitions: runtimePartitions(big, { otadata: { flash: strict(), encrypted: true }, ota_0: { flash: strict(), encrypted: true }, ota_1: { flash: strict(), encrypted: true } }), runningPartition: 'ota_0', startMs: 0xffff_ff00 });
        installEmuModdable(emu);
        const lines: string[] = [];
        const booted = bootDevice(deviceConfig(fleet), { writeLine: (line) => lines.push(line), console: { port: 1, baud: 115200, receive: 3, transmit: 1 } });
        ok(booted.runtime !== undefined && booted.console !== undefined && booted.driver !== undefined, 'runtime, console and driver');
        equal(emu.serialPorts.length, 1, 'the console UART opened');
        const port = emu.serialPorts[0];
        equal(`${port.options.baud}:${port.options.port}`, '115200:1', 'its settings');
        equal(port.transmitted.length, 0, 'nothing written before the UART reports room');
        port.drain(16);
        equal(port.transmitted.length, 16, 'as much as the room allowed');
        port.drain(4096);
        const hello = uartFrames(port)[0];
        equal(`${hello.kind}:${hello.fields.device}:${hello.fields.locked}`, `hello:${consoleDeviceId(TEST_DEVICE_ID)}:true`, 'hello first, whole');
        // The runtime's log goes to the console too (and to trace).
        emu.timer.advance(0);
        const before = lines.length;
        booted.runtime.append(new Uint8Array(2000));
        emu.timer.advance(50);
        port.arrive(Array.from(encodeConsoleFrame('cmd', { id: '7', op: 'status' })));
        emu.timer.advance(0);
        port.drain(100);
        port.drain(4096);
        const frames = uartFrames(port);
        const status = frames.find((f) => f.kind === 'ok' && f.fields.id === '7');
        ok(status !== undefined, `status answered: ${JSON.stringify(frames.map((f) => f.kind))}`);
        equal(status.fields['safe-mode'], 'false', 'from the runtime');
        equal(status.fields.slot, '0', 'running slot from the glue');
        ok(lines.length >= before, 'trace still written');
        // The driver: the Timer services the runtime (the link opens its socket without anyone calling service).
        emu.timer.advance(500);
        ok(emu.sockets.sockets.length >= 1, 'the Timer serviced the runtime: the link opened a socket');
        ok(booted.console.output.dropped === 0, 'nothing dropped');
        // Unlocking needs the fleet's console key: without one (this boot) a reboot is refused.
        port.arrive(Array.from(encodeConsoleFrame('cmd', { id: '8', op: 'reboot' })));
        port.drain(4096);
        const refused = uartFrames(port).find((f) => f.fields.id === '8');
        equal(`${refused?.kind}:${refused?.fields.code}`, 'err:locked', 'locked');
        booted.driver.stop();
        installEmuModdable(undefined);
        // The runtime's log: trace and, once the console exists, log frames.
        const seen: string[] = [];
        const tee = new TeeLog({ write: (level, area, message) => void seen.push(`trace ${level} ${area} ${message}`) });
        tee.write('info', 'boot', 'before');
        tee.console = { write: (level, area, message) => void seen.push(`console ${level} ${area} ${message}`) };
        tee.write('warn', 'runtime', 'after');
        equal(seen.join('|'), 'trace info boot before|trace warn runtime after|console warn runtime after', 'tee');
      },
    },
    {
      name: 'bootProvisionedDevice reads hf_prov: provisioned boots the runtime with the record\'s identity and broker (user = device id, derived password); blank is "not provisioned" (nothing written, no network); damaged, newer-format and missing are the boot failure provisioning-unreadable (bit 14, safe mode cause storage persisted, no runtime, no network)',
      run(env) {
        const fleet = makeFleet();
        const identity = sampleIdentity({ deviceId: TEST_DEVICE_ID, keyId: 1, commandKey: { keyId: fleet.keyId, publicKey: fleet.publicKey }, brokerHost: 'broker.test', brokerPort: 1883 });
        const image = provisioningImage(fleet.crypto, identity, 4096);
        const strict = () => env.createFlash({ blocks: 2, blockLength: 4096, mode: 'strict' });
        // hf_prov is encrypted (as on the boards): the record goes in through the module's encrypting write, as the device's flash would hold it.
        const boot = (record: Uint8Array | 'blank' | 'missing') => {
          const big = provisioned(env, fleet);
          const extra: Record<string, { flash: FlashPartition; encrypted: boolean }> = { otadata: { flash: strict(), encrypted: true }, ota_0: { flash: strict(), encrypted: true }, ota_1: { flash: strict(), encrypted: true } };
          if (record !== 'missing') extra[PROVISIONING_PARTITION_LABEL] = { flash: env.createFlash({ blocks: 1, blockLength: 4096, mode: 'strict' }), encrypted: true };
          // The record has a revocation key: the runtime opens its revocation store.
          const revocation = env.createFlash({ blocks: 4, blockLength: 4096, mode: 'plain' });
          RevocationStore.format(revocation, fleet.crypto);
          extra[PARTITION_LABELS.revocation] = { flash: revocation, encrypted: false };
          const emu = createEmuModdable({ partitions: runtimePartitions(big, extra), runningPartition: 'ota_0', startMs: 0xffff_ff00 });
          installEmuModdable(emu);
          const prov = createDeviceHal({ writeLine: () => undefined }).partition(PROVISIONING_PARTITION_LABEL);
          prov?.eraseBlock(0);
          if (record instanceof Uint8Array) prov?.write(0, record);
          const lines: string[] = [];
          const booted = bootProvisionedDevice({ writeLine: (line) => lines.push(line), drive: false });
          for (let i = 0; i < 5 && booted.runtime !== undefined; i++) {
            emu.time.ms += 50;
            booted.runtime.service(booted.hal.clock.ticks());
          }
          const safe = SafeModeStore.open(partsOf(big).safeMode as FlashPartition).status();
          return { booted, emu, lines, safe };
        };

        const good = boot(image);
        equal(good.booted.provisioning.state, 'provisioned', good.lines.join(''));
        ok(good.booted.runtime !== undefined, 'the runtime started');
        equal(good.booted.runtime.status().mode, 'normal', `normal mode (failures: ${good.booted.runtime.status().failures.map((f) => f.code).join(', ')})`);
        equal(good.emu.sockets.sockets.length, 1, 'the link opened a socket');
        const socket = good.emu.sockets.sockets[0];
        equal(`${socket.options.host}:${socket.options.port}`, 'broker.test:1883', 'the record\'s broker');
        socket.connected();
        good.booted.runtime.service(good.booted.hal.clock.ticks());
        const connect = String.fromCharCode(...socket.written);
        equal(socket.written[0], 0x10, 'CONNECT');
        ok(connect.includes('d10000000000000a') && connect.includes(SAMPLE_BROKER_PASSWORD), 'user name = device id hex, password derived from the secret');
        equal(good.safe.active, false, 'not in safe mode');

        const blank = boot('blank');
        equal(blank.booted.provisioning.state, 'not-provisioned', 'blank');
        equal(blank.booted.runtime, undefined, 'no runtime');
        equal(blank.emu.sockets.sockets.length, 0, 'no network');
        ok(blank.lines.some((l) => l.startsWith('error boot: not provisioned')), blank.lines.join(''));
        equal(`${blank.safe.active}:${blank.safe.cause}`, 'false:none', 'nothing written to the safe-mode state');

        const damaged = image.slice();
        damaged[20] ^= 0x01;
        const newer = image.slice();
        newer[4] = 2;
        for (const [what, prov, code] of [['damaged', damaged, 'damaged'], ['newer format', newer, 'newer-format'], ['no partition', 'missing', 'partition-missing']] as const) {
          const b = boot(prov);
          const p = b.booted.provisioning;
          ok(p.state === 'failed', `${what}: failed (${p.state})`);
          equal(`${p.failure.code}:${p.failure.stage}:${p.code}`, `provisioning-unreadable:storage:${code}`, `${what}: the named failure`);
          equal(p.bootFailureBits, failureBit('provisioning-unreadable'), `${what}: its health bit`);
          equal(p.bootFailureBits, 1 << 14, `${what}: bit 14`);
          equal(b.booted.runtime, undefined, `${what}: no runtime`);
          equal(b.emu.sockets.sockets.length, 0, `${what}: no network`);
          equal(`${b.safe.active}:${b.safe.cause}`, 'true:storage', `${what}: safe mode persisted (cause storage)`);
          ok(b.lines.some((l) => l.startsWith('error boot: provisioning-unreadable')), b.lines.join(''));
        }
        installEmuModdable(undefined);
      },
    },
    {
      name: 'a trial boot on the Moddable target gets the link checks from the board: with no broker reached within 12 watchdog periods it rolls back (update-rolled-back, esp_restart)',
      run(env) {
        const t = trialDevice(env);
        const emu = createEmuModdable({
          partitions: runtimePartitions(t.flash, {
            otadata: { flash: t.update.otadata, encrypted: false },
            ota_0: { flash: t.update.slots[0], encrypted: false },
            ota_1: { flash: t.update.slots[1], encrypted: false },
            hf_progress: { flash: t.update.progress, encrypted: false },
          }),
          runningPartition: 'ota_1',
          secureVersion: 1,
          watchdogTimeoutMs: 2000,
        });
        installEmuModdable(emu);
        const booted = bootDevice(deviceConfig(t.fleet), { writeLine: () => undefined, board: { board: BOARD, chip: 'esp32', watchdogTimeoutMs: 2000 }, drive: false });
        const runtime = booted.runtime;
        ok(runtime !== undefined, 'started');
        equal(runtime.status().trial, 'running', `a trial (failures: ${runtime.status().failures.map((f) => f.code).join(',')})`);
        let reset: unknown;
        for (let ms = 0; ms < 30_000 && reset === undefined; ms += 500) {
          emu.time.ms += 500;
          try {
            runtime.service(booted.hal.clock.ticks());
          } catch (error) {
            if (!(error instanceof EmuReset)) throw error;
            reset = error;
          }
          if (reset === undefined) ok(ms < 24_000 + 1000, 'still running after the deadline');
        }
        ok(reset instanceof EmuReset && reset.kind === 'restart', 'esp_restart after the deadline');
        ok(emu.time.ms >= 24_000, `not before 12 watchdog periods (${emu.time.ms} ms)`);
        const audit = auditSummary(t.flash, t.fleet);
        ok(audit.some((e) => e.startsWith('update-rolled-back:broker-reached')), `rolled back for the broker: ${audit.join(',')}`);
        installEmuModdable(undefined);
      },
    },
  ],
};
