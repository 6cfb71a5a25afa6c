/**
 * The outbox's flash figures must not regress past the targets set against
 * FlashDB and littlefs (../shared/ANCHORS.md). These are deterministic
 * counts of the simulated flash, never timings.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bootReadBytes, steadyState } from '../../bench/outbox.bench.ts';

const WA_TARGETS = {
  plain: { 16: 1.3, 64: 1.08, 256: 1.025 },
  strict: { 16: 2.1, 64: 1.3, 256: 1.08 },
} as const;

describe('outbox figures (W2 steady state, 64 sectors)', () => {
  for (const mode of ['plain', 'strict'] as const) {
    for (const size of [16, 64, 256] as const) {
      it(`${mode}, ${size}-byte records: write amplification and erases within target`, () => {
        const figures = steadyState(mode, size, true);
        assert.ok(figures.wa <= WA_TARGETS[mode][size], `write amplification ${figures.wa.toFixed(4)} > ${WA_TARGETS[mode][size]}`);
        assert.ok(figures.erasesPerMiB <= figures.wa * 256 * 1.02, `${figures.erasesPerMiB.toFixed(1)} erases per MiB > WA × 256 × 1.02`);
        assert.equal(figures.dropped, 0, 'acked workload drops nothing');
      });
    }
  }
});

describe('outbox boot recovery (W3)', () => {
  it('reads at most 3 KiB on 64 sectors, the same with 100 or 2,000 records queued', () => {
    const q100 = bootReadBytes(64, 100);
    const q2000 = bootReadBytes(64, 2_000);
    assert.ok(q100 <= 3072 && q2000 <= 3072, `read ${q100} / ${q2000} bytes`);
    assert.ok(Math.abs(q2000 - q100) <= 256, `boot read grows with queue depth: ${q100} → ${q2000}`);
  });
});
