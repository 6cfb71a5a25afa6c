/**
 * An image source that has not received the next chunk yet (the MQTT
 * source: chunks arrive one at a time) in Node and XS. `read` returns
 * undefined: `install` answers 'pending' with the offset and length it
 * needs, writes nothing for that chunk, audits nothing (a download in
 * progress is not a refusal), and the next call resumes there; the signed
 * manifest is verified once per boot for the same bytes and the chunks
 * already staged are not hashed again in the same boot.
 */
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { ImageSource } from '../../firmware/update/staging.ts';
import { StagingProgress } from '../../firmware/update/staging-progress.ts';
import { provisionDevice } from '../../tools/sim/bootloader.ts';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseSuite, FirmwareCase } from '../support/cases.ts';
import { agentFor, BLOCK, flashOptions, makeWorld, newDeviceState, partitionsOf, type World } from './agent-world.ts';

interface Counts {
  verifies: number;
  hashedBytes: number;
}

function counting(inner: Crypto, counts: Counts): Crypto {
  return {
    createSha256: () => {
      const h = inner.createSha256();
      return {
        update(data: Uint8Array) {
          counts.hashedBytes += data.length;
          h.update(data);
        },
        digest: () => h.digest(),
      };
    },
    hmacSha256: (k, d) => inner.hmacSha256(k, d),
    aeadSeal: (k, n, p, a) => inner.aeadSeal(k, n, p, a),
    aeadOpen: (k, n, s, a) => inner.aeadOpen(k, n, s, a),
    ed25519Verify: (s, m, p) => {
      counts.verifies++;
      return inner.ed25519Verify(s, m, p);
    },
  };
}

/** Serves only the chunk at `have` (one erase block), undefined for any other. */
class OneChunkSource implements ImageSource {
  have: number | undefined;
  asked: { offset: number; length: number }[] = [];
  constructor(private readonly image: Uint8Array) {}
  read(offset: number, length: number): Uint8Array | undefined {
    this.asked.push({ offset, length });
    if (offset !== this.have) return undefined;
    this.have = undefined;
    return this.image.subarray(offset, offset + length);
  }
}

const cases: FirmwareCase[] = [
  {
    name: 'install from a source that has not the next chunk yet: pending with the offset it needs, nothing audited, resumes there; the manifest is verified once and no chunk is hashed twice in one boot',
    run(env) {
      const base = makeWorld();
      const counts: Counts = { verifies: 0, hashedBytes: 0 };
      const world: World = { ...base, crypto: counting(base.crypto, counts) };
      const flash = env.createFlash(flashOptions('plain'));
      provisionDevice(partitionsOf(flash), base.factory.image);
      const state = newDeviceState(world, {}, undefined);
      const { agent } = agentFor(flash, world, state, 0, new VirtualClock());
      const release = base.release(2, 1);
      const source = new OneChunkSource(release.image);
      const chunks = Math.ceil(release.image.length / BLOCK);
      ok(chunks >= 2, 'at least two chunks');
      const beforeVerifies = counts.verifies;
      let restarted = false;
      for (let chunk = 0; chunk <= chunks && !restarted; chunk++) {
        let outcome;
        try {
          outcome = agent.install(release.manifest, source);
        } catch (error) {
          if (!(error instanceof DeviceReset)) throw error;
          restarted = true;
          break;
        }
        equal(outcome.ok, false, 'not done');
        equal(outcome.reason, 'pending', `pending at chunk ${chunk}: ${outcome.message}`);
        equal(outcome.next?.offset, chunk * BLOCK, 'asks for the next chunk');
        equal(outcome.next?.length, Math.min(BLOCK, release.image.length - chunk * BLOCK), 'and its length');
        const session = StagingProgress.open(partitionsOf(flash).progress).session();
        equal(session?.chunksDone ?? 0, chunk, 'chunks durable so far');
        source.have = chunk * BLOCK;
      }
      ok(restarted, 'staged and restarted into the trial');
      equal(state.events.join(','), 'update-staged', 'no update-rejected for a download in progress');
      const verifies = counts.verifies - beforeVerifies;
      ok(verifies >= 1 && verifies <= 2, `the manifest verified once for ${chunks + 1} calls (${verifies} Ed25519 verifications: the manifest's threshold)`);
      // Every chunk hashed once while staging, the whole image once more at the end (the staged image's own checks), never a quadratic re-hash.
      ok(counts.hashedBytes <= 4 * release.image.length + 4096, `hashed ${counts.hashedBytes} bytes for a ${release.image.length}-byte image`);
      return { chunks, verifies, hashedBytes: counts.hashedBytes };
    },
  },
  {
    name: 'a pending download resumes in the next boot (fresh agent) at the first chunk without a progress entry',
    run(env) {
      const world = makeWorld();
      const flash = env.createFlash(flashOptions('plain'));
      provisionDevice(partitionsOf(flash), world.factory.image);
      const state = newDeviceState(world, {}, undefined);
      const release = world.release(2, 1);
      const first = agentFor(flash, world, state, 0, new VirtualClock()).agent;
      const source = new OneChunkSource(release.image);
      equal(first.install(release.manifest, source).reason, 'pending', 'first call');
      source.have = 0;
      const second = first.install(release.manifest, source);
      equal(second.next?.offset, BLOCK, 'chunk 0 staged');
      // Reboot: a fresh agent, no RAM.
      const again = agentFor(flash, world, state, 0, new VirtualClock()).agent;
      const resumed = again.install(release.manifest, new OneChunkSource(release.image));
      equal(resumed.reason, 'pending', 'pending');
      equal(resumed.next?.offset, BLOCK, 'resumes at chunk 1');
      equal(state.events.length, 0, 'nothing audited');
    },
  },
];

export const suite: CaseSuite = { name: 'update agent: a source that has not the next chunk yet', cases };
