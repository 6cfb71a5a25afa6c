/**
 * Emulated `crypt`'s `Digest` (Moddable SDK modules/crypt/digest/crypt.js):
 * "SHA256" computed by @noble/hashes (the test's independent reference:
 * the adapter's fallback is the firmware's own noble-crypto), other
 * algorithms refused as a build without them would. `failing` makes the
 * constructor throw, as on a build without the native digest.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import type { DigestClass, DigestInstance, ModdableBuffer } from '../../../firmware/targets/moddable/modules.ts';
import { bytesOf } from './flash.ts';

export interface EmuDigestStats {
  constructed: number;
  bytes: number;
}

export function createEmuDigest(options: { failing?: boolean } = {}): { Digest: DigestClass; stats: EmuDigestStats } {
  const stats: EmuDigestStats = { constructed: 0, bytes: 0 };
  class Digest implements DigestInstance {
    private readonly state = sha256.create();
    private closed = false;

    constructor(type: string) {
      if (options.failing === true) throw new Error('Digest: unsupported');
      if (type !== 'SHA256') throw new Error(`Digest: unsupported ${type}`);
      stats.constructed++;
    }
    write(data: ModdableBuffer): void {
      if (this.closed) throw new Error('Digest: closed');
      const bytes = bytesOf(data);
      stats.bytes += bytes.length;
      this.state.update(bytes.slice());
    }
    close(): ArrayBuffer {
      if (this.closed) throw new Error('Digest: closed');
      this.closed = true;
      return this.state.digest().slice().buffer;
    }
  }
  return { Digest, stats };
}
