/**
 * The generated Moddable project carries the target: the device bundle
 * (firmware/targets/moddable/device.ts) exports what main.js calls, and every
 * module it leaves for the Moddable build to resolve is provided by the
 * manifest (an SDK manifest it includes, the esp32 build's own modules, or
 * holdfast's glue).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { listBoards, loadBoard } from '../../tools/boards/board.ts';
import { bundleForModdable } from '../../tools/xs/bundle.ts';
import { DEVICE_ENTRY, DEVICE_TEMPLATE_DIR, MODDABLE_EXTERNALS, moddableManifest, projectFiles } from '../../tools/boards/moddable-project.ts';
import { MODDABLE_MODULES } from '../../tools/check/firmware-rules.ts';
import { join } from 'node:path';

/** Where each module the device bundle imports comes from in the manifest (Moddable SDK 8.2). */
const PROVIDERS: Readonly<Record<string, (manifest: Record<string, any>) => boolean>> = {
  'embedded:storage/flash': (m) => m.include.includes('$(MODDABLE)/modules/io/flash/manifest.json'),
  'embedded:io/serial': (m) => m.include.includes('$(MODDABLE)/modules/io/manifest.json'),
  socket: (m) => m.include.includes('$(MODDABLE)/examples/manifest_net.json'),
  securesocket: (m) => m.include.includes('$(MODDABLE)/modules/crypt/tls.json'),
  crypt: (m) => m.include.includes('$(MODDABLE)/modules/crypt/digest/manifest.json'),
  // build/devices/esp32/manifest.json lists both for every esp32 build.
  time: () => true,
  timer: () => true,
  'holdfast-native': (m) => m.platforms.esp32.modules['holdfast-native'] === './native/holdfast-native',
};

/** The Moddable bundle exactly as `holdfast build --board` makes it. */
function deviceBundle(): Promise<{ imports: string[]; text: string }> {
  return bundleForModdable(DEVICE_ENTRY, MODDABLE_EXTERNALS);
}

describe('Moddable project: the target in the generated project', () => {
  it('the device bundle imports only Moddable modules the manifest provides, for every board', async () => {
    const { imports } = await deviceBundle();
    assert.deepEqual(imports, Object.keys(PROVIDERS).sort(), 'the modules the device bundle leaves for the Moddable build');
    for (const id of ['esp32-devkitc', 'esp32-s3-devkitc-1', 'esp32-c3-devkitm-1']) {
      const manifest = moddableManifest(loadBoard(id)) as Record<string, any>;
      for (const specifier of imports) assert.ok(PROVIDERS[specifier](manifest), `${id}: the manifest provides ${specifier}`);
    }
  });

  it('exports what main.js calls (bootDevice, and startRuntime for the project test) and main.js boots through it', async () => {
    const { text } = await deviceBundle();
    const exported = /export\s*\{([^}]*)\}\s*;?\s*$/m.exec(text);
    assert.ok(exported, 'an export list');
    const names = exported[1].split(',').map((n) => n.trim().split(/\s+as\s+/).pop());
    for (const name of ['bootDevice', 'bootProvisionedDevice', 'createDeviceHal', 'startRuntime', 'createModdableHal']) assert.ok(names.includes(name), `exports ${name}`);
    const main = readFileSync(join(DEVICE_TEMPLATE_DIR, 'main.js'), 'utf8');
    assert.match(main, /import \{ bootProvisionedDevice \} from "holdfast";/);
    assert.match(main, /bootProvisionedDevice\(\{/);
  });

  it("the manifest gives every board's XS machine its jsHeap: static 0, fixed chunk and slot heaps, the stack (not manifest_base.json's 32 KB static)", () => {
    const boards = listBoards();
    assert.ok(boards.length >= 4, 'every board');
    for (const id of boards) {
      const board = loadBoard(id);
      const written = JSON.parse(projectFiles(board).find((f) => f.path === 'manifest.json')!.data) as Record<string, any>;
      assert.deepEqual(
        written.creation,
        { static: 0, chunk: { initial: board.jsHeap.chunkBytes, incremental: 0 }, heap: { initial: board.jsHeap.slots, incremental: 0 }, stack: board.jsHeap.stackSlots },
        `${id}: creation in the written manifest.json`,
      );
      // manifest_base.json (included) sets static 32768: the project's creation must set static to 0 explicitly, not leave it out.
      assert.ok(written.include.includes('$(MODDABLE)/examples/manifest_base.json') && Object.hasOwn(written.creation, 'static'), `${id}: static set over the included base`);
    }
  });

  it('the bundle leaves as imports exactly the names the firmware rules allow under targets/moddable', () => {
    assert.deepEqual([...MODDABLE_EXTERNALS].filter((n) => n !== 'embedded:*').sort(), [...MODDABLE_MODULES].sort());
  });

  it('the glue declares in JavaScript every host function its C defines, and the C documents each', () => {
    const js = readFileSync(join(DEVICE_TEMPLATE_DIR, 'holdfast-native.js'), 'utf8');
    const c = readFileSync(join(DEVICE_TEMPLATE_DIR, 'holdfast-native.c'), 'utf8');
    const declared = [...js.matchAll(/@ "(xs_holdfast_\w+)"/g)].map((m) => m[1]).sort();
    const defined = [...c.matchAll(/^void (xs_holdfast_\w+)\(xsMachine \*the\)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(declared, defined);
    for (const name of ['fillRandom', 'partitionEncrypted', 'readPartitionRaw', 'expireWatchdog']) assert.match(js, new RegExp(`export \\{[^}]*\\b${name}\\b`), `exports ${name}`);
    for (const call of ['esp_partition_read_raw', 'esp_fill_random', '->encrypted', 'vTaskDelay']) assert.ok(c.includes(call), `the C wraps ${call}`);
  });
});
