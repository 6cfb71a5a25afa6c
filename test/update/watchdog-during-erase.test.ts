/**
 * A watchdog that would fire during the long erase of the inactive slot:
 * staging erases one block per chunk and feeds the watchdog around each
 * erase, so 20 blocks × 45 ms of erasing never starve a 200 ms watchdog;
 * without the feeds the same work resets the device, tearing the erase.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sha256 } from '@noble/hashes/sha2.js';
import { StagingProgress } from '../../firmware/update/staging-progress.ts';
import { imageTag, stageImage } from '../../firmware/update/staging.ts';
import { SimDevice } from '../../tools/sim/device.ts';
import { SimFlash } from '../../tools/sim/flash/sim-flash.ts';

const BLOCKS = 20;
const image = new Uint8Array(BLOCKS * 4096 - 100).map((_, i) => (i * 31) & 0xff);
const expected = { tag: imageTag(sha256(image)), length: image.length, sha256: sha256(image) };

function device(): SimDevice {
  return new SimDevice({ slot: new SimFlash({ blocks: BLOCKS }), progress: new SimFlash({ blocks: 2 }) });
}

describe('staging under a watchdog (ESP32 erase timing: 45 ms per 4 KiB sector)', () => {
  it('feeds the watchdog around every erase: a 200 ms watchdog never fires during 900 ms of erasing', () => {
    const sim = device();
    const outcome = sim.boot((hal) => {
      hal.watchdog.arm(200);
      const result = stageImage(
        { slot: hal.flash('slot'), progress: StagingProgress.open(hal.flash('progress')), crypto: { createSha256: () => sha256.create() }, watchdog: hal.watchdog },
        expected,
        { read: (offset, length) => image.subarray(offset, offset + length) },
      );
      assert.ok(result.ok);
    });
    assert.deepEqual(outcome, { kind: 'returned' });
    assert.ok(sim.clock.elapsed >= BLOCKS * 45, `virtual time ${sim.clock.elapsed} ms covers the erases`);
    assert.equal(sim.watchdog.fired, 0);
  });

  it('without the feeds the watchdog resets the device in the middle of an erase, and the next boot resumes', () => {
    const sim = device();
    const stage = (feed: boolean) =>
      sim.boot((hal) => {
        // 170 ms: the progress log's two erases (90 ms), then slot erase, write, erase… the deadline falls inside an erase.
        if (!feed) hal.watchdog.arm(170);
        const result = stageImage(
          { slot: hal.flash('slot'), progress: StagingProgress.open(hal.flash('progress')), crypto: { createSha256: () => sha256.create() } },
          expected,
          { read: (offset, length) => image.subarray(offset, offset + length) },
        );
        assert.ok(result.ok);
      });
    const first = stage(false);
    assert.equal(first.kind, 'reset');
    assert.equal(first.kind === 'reset' && first.reason, 'watchdog');
    assert.equal(sim.partition('slot').target.lastTornOperation()?.kind, 'erase', 'the reset tore an erase');
    const second = stage(true);
    assert.deepEqual(second, { kind: 'returned' }, 'the next boot resumes and finishes');
  });
});
