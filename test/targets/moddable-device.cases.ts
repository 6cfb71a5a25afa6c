/**
 * firmware/targets/moddable/device.ts as the device runs it: its imports of
 * the Moddable SDK's module names (`embedded:storage/flash`, `time`, `timer`,
 * `socket`, `securesocket`, `crypt`, `embedded:io/serial`, `holdfast-native`)
 * resolve to the by-name emulations (tools/xs/moddable-emu/named/; a resolve
 * hook in Node, an esbuild plugin for XS: moddable-device.test.ts), so the
 * real import statements and export shapes are exercised, not only the
 * adapters' logic.
 */
import { bootDevice, createDeviceHal, deviceModules, startRuntime } from '../../firmware/targets/moddable/device.ts';
import { PARTITION_LABELS, type PartitionKey } from '../../firmware/runtime/boot.ts';
import { deviceConfig, flashOptions, makeFleet, provision, RecordingActuator } from '../runtime/runtime-world.ts';
import { Counter } from '../../firmware/storage/counter.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { createEmuModdable, type EmuModdable } from '../../tools/xs/moddable-emu/index.ts';
import { installEmuModdable } from '../../tools/xs/moddable-emu/installed.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';

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
  ],
};
