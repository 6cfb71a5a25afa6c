/**
 * A device made by `holdfast provision` + `holdfast flash --factory` boots
 * (docs/spec/provisioning.md, "Factory data images"). The whole chip comes
 * from the test (factory-boot.test.ts): the bytes the ROM loader emulator
 * held after the CLI flashed a board with a provisioning run's store images
 * and one device's hf_prov. Here, in Node and in XS, the Moddable target
 * (firmware/targets/moddable/device.ts over the emulated SDK modules) boots
 * over exactly those bytes, its partitions found through the partition
 * table the flash wrote at 0x8000 (as ESP-IDF finds them).
 *
 * The chip is the flash of `CHIP_BLOCKS` blocks the case asks for; the test
 * fills it before each case (the host side of the XS worker in XS).
 */
import { bootProvisionedDevice, createDeviceHal } from '../../firmware/targets/moddable/device.ts';
import { createEmuModdable, type EmuModdable } from '../../tools/xs/moddable-emu/index.ts';
import { installEmuModdable } from '../../tools/xs/moddable-emu/installed.ts';
import type { EmuPartition } from '../../tools/xs/moddable-emu/flash.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';

/** esp32-devkitc: 4 MiB of 4 KiB blocks. */
export const CHIP_BLOCKS = 1024;
export const BLOCK = 4096;
export const TABLE_OFFSET = 0x8000;
/** The broker the test's provisioning run names. */
export const BROKER = 'broker.test:1883';

interface Row {
  readonly label: string;
  readonly offset: number;
  readonly size: number;
  readonly encrypted: boolean;
}

/** The rows of the ESP-IDF partition table at 0x8000 (docs/spec/partition-table.md), as the bootloader reads them: up to the first row that is not AA 50. */
function tableOf(chip: FlashPartition): Row[] {
  const bytes = new Uint8Array(0xc00);
  chip.read(TABLE_OFFSET, bytes);
  const view = new DataView(bytes.buffer);
  const rows: Row[] = [];
  for (let at = 0; at + 32 <= bytes.length && bytes[at] === 0xaa && bytes[at + 1] === 0x50; at += 32) {
    let label = '';
    for (let i = 12; i < 28 && bytes[at + i] !== 0; i++) label += String.fromCharCode(bytes[at + i]);
    rows.push({ label, offset: view.getUint32(at + 4, true), size: view.getUint32(at + 8, true), encrypted: (view.getUint32(at + 28, true) & 1) === 1 });
  }
  return rows;
}

function viewOf(chip: FlashPartition, row: Row): PartitionView {
  return new PartitionView(chip, row.offset / BLOCK, row.size / BLOCK);
}

function allErased(flash: FlashPartition): boolean {
  const bytes = new Uint8Array(flash.status().size);
  flash.read(0, bytes);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

function chipOf(env: CaseEnv): FlashPartition {
  const chip = env.createFlash({ blocks: CHIP_BLOCKS, blockLength: BLOCK, mode: 'plain' });
  equal(tableOf(chip).length > 0, true, 'the chip holds a partition table at 0x8000');
  return chip;
}

interface Boot {
  readonly booted: ReturnType<typeof bootProvisionedDevice>;
  readonly emu: EmuModdable;
  readonly lines: string[];
}

function boot(partitions: Record<string, EmuPartition>): Boot {
  const emu = createEmuModdable({ partitions, runningPartition: 'ota_0', startMs: 0xffff_ff00 });
  installEmuModdable(emu);
  const lines: string[] = [];
  const booted = bootProvisionedDevice({ writeLine: (line) => lines.push(line), drive: false });
  for (let i = 0; i < 5 && booted.runtime !== undefined; i++) {
    emu.time.ms += 50;
    booted.runtime.service(booted.hal.clock.ticks());
  }
  return { booted, emu, lines };
}

/** Without flash encryption: every partition of the table over the chip's bytes, as they are. */
function plainPartitions(chip: FlashPartition): Record<string, EmuPartition> {
  const out: Record<string, EmuPartition> = {};
  for (const row of tableOf(chip)) out[row.label] = { flash: viewOf(chip, row), encrypted: false };
  return out;
}

function failuresOf(b: Boot): string {
  return (b.booted.runtime?.status().failures ?? []).map((f) => `${f.code}:${f.cause}`).join(', ');
}

function expectNormal(b: Boot, what: string): void {
  equal(b.booted.provisioning.state, 'provisioned', `${what}: provisioned (${b.lines.join('')})`);
  ok(b.booted.runtime !== undefined, `${what}: the runtime started`);
  const status = b.booted.runtime!.status();
  equal(failuresOf(b), '', `${what}: no boot failure`);
  equal(status.mode, 'normal', `${what}: normal mode`);
  equal(status.bootFailureBits, 0, `${what}: no failure bit`);
  equal(status.auditLost, 0, `${what}: every audit event kept`);
  equal(b.emu.sockets.sockets.length, 1, `${what}: the link opened a socket`);
  const socket = b.emu.sockets.sockets[0];
  equal(`${socket.options.host}:${socket.options.port}`, BROKER, `${what}: the record's broker`);
}

/**
 * Flash encryption on, the stores written as a station must write them:
 * each programmed 16-byte unit through the encrypting path (as esptool
 * --encrypt or a pre-encrypted image would store it), every erased unit
 * left raw-erased. `inPlace` instead models ESP-IDF's first-boot
 * encryption, which encrypts every unit of an `encrypted` partition,
 * erased ones too (esp_flash_encrypt_region).
 */
function encryptedPartitions(env: CaseEnv, chip: FlashPartition, inPlace: boolean): Record<string, EmuPartition> {
  const rows = tableOf(chip);
  const out: Record<string, EmuPartition> = {};
  for (const row of rows) {
    if (!row.encrypted || !row.label.startsWith('hf_')) out[row.label] = { flash: viewOf(chip, row), encrypted: false };
    else out[row.label] = { flash: env.createFlash({ blocks: row.size / BLOCK, blockLength: BLOCK, mode: 'strict' }), encrypted: true };
  }
  installEmuModdable(createEmuModdable({ partitions: out, runningPartition: 'ota_0' }));
  const hal = createDeviceHal({ writeLine: () => undefined });
  const unit = new Uint8Array(16);
  for (const row of rows) {
    if (!row.encrypted || !row.label.startsWith('hf_')) continue;
    const plain = viewOf(chip, row);
    const target = hal.partition(row.label)!;
    equal(target.status().writeAlign, 16, `${row.label}: 16-byte units under encryption`);
    const bytes = new Uint8Array(BLOCK);
    for (let block = 0; block < row.size / BLOCK; block++) {
      plain.read(block * BLOCK, bytes);
      if (inPlace) {
        target.write(block * BLOCK, bytes);
        continue;
      }
      for (let at = 0; at < BLOCK; at += 16) {
        unit.set(bytes.subarray(at, at + 16));
        if (!unit.every((b) => b === 0xff)) target.write(block * BLOCK + at, unit);
      }
    }
  }
  installEmuModdable(undefined);
  return out;
}

export const suite: CaseSuite = {
  name: 'a device made by holdfast provision + holdfast flash --factory boots',
  cases: [
    {
      name: 'flash encryption off: over the flashed bytes the device is provisioned, in normal mode, with no boot failure; booted again, the same',
      run(env) {
        const chip = chipOf(env);
        expectNormal(boot(plainPartitions(chip)), 'first boot');
        expectNormal(boot(plainPartitions(chip)), 'second boot');
        installEmuModdable(undefined);
      },
    },
    {
      name: 'a store left blank still fails closed: hf_counter erased is counter-unreadable (blank), hf_revoke erased is revocation-unreadable, hf_trust erased is trust-unavailable, safe mode, and the store is still erased after the boot (no silent format)',
      run(env) {
        for (const [label, code, cause, mode] of [
          ['hf_counter', 'counter-unreadable', 'blank', 'safe'],
          ['hf_revoke', 'revocation-unreadable', 'blank', 'safe'],
          ['hf_trust', 'trust-unavailable', 'not-provisioned', 'safe'],
        ] as const) {
          const chip = chipOf(env);
          const row = tableOf(chip).find((r) => r.label === label)!;
          const store = viewOf(chip, row);
          for (let b = 0; b < store.status().blocks; b++) store.eraseBlock(b);
          const booted = boot(plainPartitions(chip));
          equal(booted.booted.provisioning.state, 'provisioned', `${label}: provisioned`);
          const status = booted.booted.runtime!.status();
          ok(status.failures.some((f) => f.code === code && f.cause === cause), `${label} erased: ${code} (${cause}); got ${failuresOf(booted)}`);
          equal(status.mode, mode, `${label} erased: safe mode`);
          ok(allErased(store), `${label}: still erased after the boot, never formatted by the device`);
        }
        installEmuModdable(undefined);
      },
    },
    {
      name: 'flash encryption on (16-byte images): written as a station writes them (programmed units encrypted, erased units left raw) the device boots with no boot failure; encrypted in place as ESP-IDF\'s first boot does, the first write into a store\'s erased space programs a unit twice',
      run(env) {
        const chip = chipOf(env);
        const station = boot(encryptedPartitions(env, chip, false));
        expectNormal(station, 'station-encrypted');
        let refused = '';
        try {
          const inPlace = boot(encryptedPartitions(env, chip, true));
          refused = `booted: ${failuresOf(inPlace)}`;
        } catch (error) {
          refused = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        }
        ok(/program unit|programmed|twice|once/i.test(refused), `in place: a unit written twice (${refused})`);
        installEmuModdable(undefined);
      },
    },
  ],
};
