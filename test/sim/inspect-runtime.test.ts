/**
 * `holdfast inspect` on a simulated fleet device's flash image
 * (tools/inspect/runtime-image.ts): a freshly provisioned device shows its
 * counter, outbox, audit log, otadata with the factory image and its trust
 * store; a store whose bytes were spoiled is named as damaged (never read
 * as empty); an image of another size (the demo's frame log) is described
 * as flash only.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';
import { saveImage } from '../../tools/sim/flash/image-file.ts';
import { layoutBlocks, layoutOf, RUNTIME_BLOCK } from '../../tools/sim/runtime-device.ts';
import { fleetFirmware, provisionRuntimeFlash } from '../../tools/sim/fleet/fleet-firmware.ts';
import { FLEET_CONSTANTS } from '../../tools/sim/fleet/scenario.ts';
import { batch, expectExit } from '../cli/cli-harness.ts';

interface Stored {
  ok: boolean;
  value?: Record<string, unknown>;
  damaged?: string;
}

describe('holdfast inspect: a sim device image', () => {
  it('a provisioned device reads store by store; a spoiled counter is damaged; a foreign image is flash only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-inspect-runtime-'));
    try {
      const fw = fleetFirmware(3, 600, { kind: 'sim', bad: 'hang' }, FLEET_CONSTANTS.outboxBlocks);
      const good = new SimFlash({ blocks: layoutBlocks(fw.layout), mode: 'strict' });
      provisionRuntimeFlash(good, fw);
      saveImage(join(dir, 'good.hfimg'), good);
      const spoiled = SimFlash.fromSnapshot(good.snapshot());
      const [counterFirst] = layoutOf(fw.layout).counter;
      // Both counter blocks erased and overwritten with a pattern no log writes.
      for (const b of [counterFirst, counterFirst + 1]) {
        spoiled.eraseBlock(b);
        spoiled.write(b * RUNTIME_BLOCK, new Uint8Array(64).fill(0x5a));
      }
      saveImage(join(dir, 'spoiled.hfimg'), spoiled);
      saveImage(join(dir, 'foreign.hfimg'), new SimFlash({ blocks: 10, mode: 'plain' }));
      const [g, s, f] = await batch(['good', 'spoiled', 'foreign'].map((n) => ['inspect', join(dir, `${n}.hfimg`), '--json']));
      for (const [run, what] of [[g, 'good'], [s, 'spoiled'], [f, 'foreign']] as const) expectExit(run, 0, what);
      const runtime = (JSON.parse(g.stdout) as { runtime: Record<string, Stored> }).runtime;
      assert.ok(runtime.counter.ok && runtime.outbox.ok && runtime.audit.ok && runtime.otadata.ok && runtime.trust.ok, g.stdout);
      assert.equal(runtime.outbox.value?.queued, 0);
      assert.equal(runtime.audit.value?.entries, 0);
      assert.equal(runtime.trust.value?.rootVersion, 1);
      assert.deepEqual((runtime.otadata.value?.slots as { imageVersion: number | null }[]).map((x) => x.imageVersion), [1, null], 'the factory image in ota_0, ota_1 blank');
      const damaged = (JSON.parse(s.stdout) as { runtime: Record<string, Stored> }).runtime;
      assert.equal(damaged.counter.ok, false, s.stdout);
      assert.match(String(damaged.counter.damaged), /\S/);
      assert.ok(damaged.outbox.ok && damaged.trust.ok, 'the other stores still read');
      assert.equal((JSON.parse(f.stdout) as { runtime: unknown }).runtime, null);
      const text = await batch([['inspect', join(dir, 'spoiled.hfimg')], ['inspect', join(dir, 'foreign.hfimg')]]);
      assert.match(text[0].stdout, /counter\s+DAMAGED: /);
      assert.match(text[1].stdout, /not a holdfast sim device image/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
