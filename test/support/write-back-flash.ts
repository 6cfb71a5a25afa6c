/**
 * A deliberately broken flash adapter for planted-bug tests: `write` returns
 * before the bytes are durable (a write-back cache without a flush); they
 * land on the flash beneath at the next call. Code that must make a bound
 * durable before using it fails its invariants over this. Engine-neutral
 * (runs in XS too). Test-only.
 */
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';

export class WriteBackFlash implements FlashPartition {
  private pending: { byteOffset: number; data: Uint8Array } | undefined;

  constructor(private readonly inner: FlashPartition) {}

  status(): FlashStatus {
    return this.inner.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.flush();
    this.inner.read(byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.flush();
    this.pending = { byteOffset, data: data.slice() };
  }

  eraseBlock(block: number): void {
    this.flush();
    this.inner.eraseBlock(block);
  }

  private flush(): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    this.inner.write(pending.byteOffset, pending.data);
  }
}
