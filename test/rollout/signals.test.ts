/**
 * Rollout signals from the ingest's accepted records (tools/rollout/signals.ts,
 * tools/rollout/ingest-reader.ts): any record is `seen`; a device's audit
 * entry of an update outcome counts only when its tag checks with that
 * device's audit key; the reader takes only records past the cursor that
 * arrived by the step's time, from a real ingest store (PGlite).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { hostCrypto } from '../../tools/keys/signer.ts';
import { auditKeys, signalsFrom } from '../../tools/rollout/signals.ts';
import { readAccepted } from '../../tools/rollout/ingest-reader.ts';
import { findPostgres, startPostgres } from '../../tools/net/postgres.ts';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { PostgresStore } from '../../tools/ingest/store-postgres.ts';
import { auditRecord, committed, deviceId, healthRecord, makeWorld, rolledBack, secretOf, TARGET } from './rollout-world.ts';

const crypto = hostCrypto();
const keys = auditKeys(crypto, (d) => (d.startsWith('00000000000010') ? secretOf(d) : undefined));

describe('rollout signals', () => {
  it('a health record is seen; signed commit, rollback and refusal are outcomes with version and reason', () => {
    const a = deviceId(1);
    const b = deviceId(2);
    const batch = signalsFrom(crypto, [
      rolledBack(b, 7, 50, 'self-test'),
      healthRecord(a, 3, 10),
      committed(a, 4, 20),
      auditRecord(b, 8, { kind: 'update-refused', imageVersion: TARGET, reason: 'below-floor' }, 60),
      auditRecord(b, 9, { kind: 'update-refused', imageVersion: null, reason: 'malformed' }, 61),
      auditRecord(b, 10, { kind: 'update-staged', imageVersion: TARGET, securityVersion: 3, slot: 1, resumedAtChunk: 0 }, 62),
    ], keys);
    assert.deepEqual(batch.signals, [
      { kind: 'seen', device: a, at: 10 },
      { kind: 'committed', device: a, at: 20, imageVersion: TARGET },
      { kind: 'rolled-back', device: b, at: 50, imageVersion: TARGET, reason: 'self-test' },
      { kind: 'refused', device: b, at: 60, imageVersion: TARGET, reason: 'below-floor' },
      { kind: 'seen', device: b, at: 61 },
      { kind: 'seen', device: b, at: 62 },
    ]);
    assert.deepEqual(batch.counts, { badTags: 0, undecodable: 0, unknownDevice: 0 });
    assert.deepEqual([...batch.highest], [[a, 4], [b, 10]]);
  });

  it('an entry tagged with another key is no signal and is counted; so is a damaged one; an unknown device gives nothing', () => {
    const a = deviceId(1);
    const forged = auditRecord(a, 5, { kind: 'update-committed', imageVersion: TARGET, securityVersion: 3, slot: 1 }, 30, new Uint8Array(32).fill(7));
    const damaged = committed(a, 6, 31);
    damaged.payload[20] ^= 1;
    const stranger = committed('00000000deadbeef', 1, 32);
    const batch = signalsFrom(crypto, [forged, damaged, stranger], keys);
    assert.deepEqual(batch.signals, []);
    assert.deepEqual(batch.counts, { badTags: 1, undecodable: 1, unknownDevice: 1 });
  });

  it('another device\'s entry replayed under this device\'s id does not check (the key is per device)', () => {
    const other = committed(deviceId(2), 5, 30);
    const batch = signalsFrom(crypto, [{ ...other, device: deviceId(1) }], keys);
    assert.equal(batch.counts.badTags, 1);
    assert.deepEqual(batch.signals, []);
  });

  it('the reader takes only the devices asked, past their cursor, arrived by the step', async () => {
    const a = deviceId(1);
    const b = deviceId(2);
    const c = deviceId(3);
    const world = await makeWorld(4, undefined, [healthRecord(a, 1, 10), healthRecord(a, 2, 20), committed(a, 3, 30), healthRecord(b, 1, 10), healthRecord(b, 2, 500), healthRecord(c, 1, 10)]);
    try {
      const got = await readAccepted(world.db, [a, b], { [a]: 1 }, 100_000);
      assert.deepEqual(got.map((r) => [r.device, r.counter, r.arrivedAt]), [[a, 2, 20_000], [a, 3, 30_000], [b, 1, 10_000]]);
      assert.equal(got[1]!.payload[0], 0x03);
      assert.deepEqual(await readAccepted(world.db, [], {}, 100_000), []);
    } finally {
      rmSync(world.dir, { recursive: true, force: true });
    }
  });

  const postgres = findPostgres();
  it('the same read on a PostgreSQL ingest database (postgres://), in a read-only transaction', { skip: skipUnless([postgres]) }, async () => {
    requireComponents([postgres]);
    const a = deviceId(1);
    const cluster = await startPostgres({ fsync: false });
    try {
      const url = await cluster.createDatabase('rollout');
      const store = await PostgresStore.open(url);
      try {
        await store.commit({ records: [healthRecord(a, 1, 10), committed(a, 2, 30), healthRecord(a, 3, 500)], senders: [], refusals: [] });
      } finally {
        await store.close();
      }
      const got = await readAccepted(url, [a], { [a]: 1 }, 100_000);
      assert.deepEqual(got.map((r) => [r.device, r.keyId, r.counter, r.arrivedAt]), [[a, 1, 2, 30_000]]);
      assert.deepEqual(signalsFrom(crypto, got, keys).signals, [{ kind: 'committed', device: a, at: 30, imageVersion: TARGET }]);
    } finally {
      await cluster.stop();
    }
  });
});

