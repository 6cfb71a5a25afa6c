/**
 * Inside XS, for the update benchmark: manifest verification (Ed25519 and
 * SHA-256 in pure JavaScript, @noble) and SHA-256 throughput.
 */
import { createNobleCrypto } from '../firmware/security/noble-crypto.ts';
import { checkManifest } from '../firmware/update/manifest.ts';
import { BOARD, manifestFields, signedManifest, testImage, testWorld } from '../test/update/manifest-fixtures.ts';
import { fromUtf8, utf8 } from '../tools/xs/wire.ts';

interface Request {
  op: 'prepare' | 'verify' | 'sha256';
  count?: number;
  bytes?: number;
}

export function serveUpdateBench(): void {
  const crypto = createNobleCrypto();
  const state: { verify?: () => boolean } = {};
  (globalThis as { handleCommand?: (r: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as Request;
    let result: unknown = null;
    if (message.op === 'prepare') {
      const world = testWorld(crypto);
      const image = testImage(4096);
      const manifest = signedManifest(manifestFields(crypto, image), [world.targetsKeys[0]]);
      const policy = { boardId: BOARD, runningVersion: 1, securityFloor: 0, slotSize: 0x180000 };
      state.verify = () => checkManifest(crypto, world.root1, manifest, policy).ok;
    }
    if (message.op === 'verify') {
      let passed = 0;
      for (let i = 0; i < (message.count ?? 1); i++) if (state.verify!()) passed++;
      result = passed;
    }
    if (message.op === 'sha256') {
      const chunk = new Uint8Array(4096).fill(0x5a);
      const hash = crypto.createSha256();
      for (let done = 0; done < (message.bytes ?? 0); done += chunk.length) hash.update(chunk);
      result = hash.digest().length;
    }
    return utf8(JSON.stringify(result)).buffer as ArrayBuffer;
  };
}
