/**
 * The update responder serves a rollout's image only to devices the
 * rollout offered (tools/update-server/responder.ts `allow`,
 * tools/rollout/gate.ts): an authenticated manifest request of an offered
 * device is answered, of another device it is not (counted as gated), a
 * halted rollout serves nobody, and a responder without a gate serves as
 * before.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createUpdateResponder, type UpdateOffer } from '../../tools/update-server/responder.ts';
import { nodeEnvelopePrimitives } from '../../tools/ingest/node-primitives.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import { sealWithCounter } from '../../firmware/security/envelope.ts';
import { EnvelopeSuite } from '../../firmware/security/envelope-format.ts';
import { encodeUpdateRequest } from '../../firmware/update/update-messages.ts';
import { hostCrypto } from '../../tools/keys/signer.ts';
import { Rollout } from '../../tools/rollout/engine.ts';
import { rolloutGate } from '../../tools/rollout/gate.ts';
import { manifestFields, signedManifest, testImage, testKey } from '../update/manifest-fixtures.ts';
import { exampleFleet, examplePlan, TARGET } from './rollout-fixtures.ts';

const crypto = hostCrypto();
const primitives = nodeEnvelopePrimitives();
const image = testImage(256);
const offer: UpdateOffer = { manifest: signedManifest(manifestFields(crypto, image, { imageVersion: TARGET, securityVersion: 3 }), [testKey(crypto, 11)]), image };

function bytesOf(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((b) => Number.parseInt(b, 16)));
}

const keysOf = new Map<string, DeviceKeys>();
function keys(hex: string): DeviceKeys {
  let k = keysOf.get(hex);
  if (k === undefined) {
    k = deriveDeviceKeys(crypto, new Uint8Array(32).fill(9), bytesOf(hex), 1);
    keysOf.set(hex, k);
  }
  return k;
}

function manifestRequest(hex: string, counter: number): [string, Uint8Array] {
  return [`holdfast/${hex}/telemetry`, sealWithCounter(primitives, keys(hex), EnvelopeSuite.hmacSha256, counter, encodeUpdateRequest({ kind: 'manifest', tag: 0, offset: 0, length: 0 }))];
}

describe('update responder gated by a rollout', () => {
  const fleet = exampleFleet(200);
  const started = Rollout.start(examplePlan(), fleet, 0);
  let rollout = started.rollout;
  const responder = createUpdateResponder({
    offerFor: () => offer,
    keysFor: (id) => keys([...id].map((b) => b.toString(16).padStart(2, '0')).join('')),
    primitives,
    allow: rolloutGate(() => rollout),
  });
  const offered = rollout.offered();
  const outsider = fleet.map((m) => m.device).find((d) => !offered.includes(d))!;

  it('an offered device gets the manifest; a device the rollout did not offer gets nothing', () => {
    assert.ok(offered.length > 0);
    assert.equal(responder.onTelemetry(...manifestRequest(offered[0]!, 1)).length, 1);
    assert.deepEqual(responder.onTelemetry(...manifestRequest(outsider, 1)), []);
    assert.deepEqual(responder.offer(outsider), []);
    assert.equal(responder.offer(offered[0]!).length, 1);
    assert.equal(responder.stats().gated, 2);
  });

  it('a device that rolled back is not served again; a halted rollout serves nobody', () => {
    const [a, b] = offered.length > 1 ? offered : [offered[0]!, offered[0]!];
    rollout.observe({ kind: 'rolled-back', device: a!, at: 10, imageVersion: TARGET, reason: 'self-test' });
    assert.deepEqual(responder.offer(a!), []);
    rollout = Rollout.restore(examplePlan(), rollout.snapshot());
    rollout.halt(20, 'operator');
    assert.deepEqual(responder.onTelemetry(...manifestRequest(b!, 2)), []);
  });

  it('without a gate, every device offerFor answers is served (existing callers unchanged)', () => {
    const open = createUpdateResponder({ offerFor: () => offer, keysFor: (id) => keys([...id].map((x) => x.toString(16).padStart(2, '0')).join('')), primitives });
    assert.equal(open.onTelemetry(...manifestRequest(outsider, 3)).length, 1);
    assert.equal(open.stats().gated, 0);
  });
});
