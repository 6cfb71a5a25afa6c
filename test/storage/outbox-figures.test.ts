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

/**
 * Format 2 (issue 15, defect 12) widened each entry's CRC from 16 to 32 bits:
 * 2 more bytes per record in plain mode (strict entries pad to 16-byte units
 * and absorb them). The goals above were set for 4-byte entry headers; the
 * test allows exactly that cost on top of them and nothing more
 * (docs/spec/outbox.md, "Cost model").
 */
const CRC32_COST_BYTES = { plain: 2, strict: 0 } as const;

/** FlashDB TSDB fixed-blob, W2 (../shared/ANCHORS.md): format 2 must still program less. */
const FIXED_BLOB_W2 = { 16: 1.445, 64: 1.115, 256: 1.033 } as const;

describe('outbox figures (W2 steady state, 64 sectors)', () => {
  for (const mode of ['plain', 'strict'] as const) {
    for (const size of [16, 64, 256] as const) {
      it(`${mode}, ${size}-byte records: write amplification and erases within target`, () => {
        const figures = steadyState(mode, size, true);
        const bound = WA_TARGETS[mode][size] + CRC32_COST_BYTES[mode] / size;
        assert.ok(figures.wa <= bound, `write amplification ${figures.wa.toFixed(4)} > ${bound.toFixed(4)} (goal ${WA_TARGETS[mode][size]} + the CRC-32's ${CRC32_COST_BYTES[mode]} bytes per record)`);
        if (mode === 'plain') assert.ok(figures.wa < FIXED_BLOB_W2[size], `write amplification ${figures.wa.toFixed(4)} ≥ FlashDB fixed-blob's ${FIXED_BLOB_W2[size]}`);
        assert.ok(figures.eraseSpread <= 1, `erases per sector (counted at the flash) differ by ${figures.eraseSpread}`);
        assert.equal(figures.eraseCountError, 0, 'sector headers record the erases the flash counted');
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
