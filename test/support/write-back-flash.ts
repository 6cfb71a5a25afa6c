/**
 * A deliberately broken flash adapter for planted-bug tests: `write` returns
 * before the bytes are durable (a write-back cache without a flush); they
 * land on the flash beneath at the next read or erase. (Every write is held,
 * not only the last: a store that writes each record twice would otherwise
 * get its first copy flushed by the second.) Code that must make a bound
 * durable before using it fails its invariants over this. Engine-neutral
 * (runs in XS too). Test-only.
 */
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';

export class WriteBackFlash implements FlashPartition {
  private readonly pending: { byteOffset: number; data: Uint8Array }[] = [];

  constructor(private readonly inner: FlashPartition) {}

  status(): FlashStatus {
    return this.inner.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.flush();
    this.inner.read(byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.pending.push({ byteOffset, data: data.slice() });
  }

  eraseBlock(block: number): void {
    this.flush();
    this.inner.eraseBlock(block);
  }

  private flush(): void {
    while (this.pending.length > 0) {
      const next = this.pending.shift() as { byteOffset: number; data: Uint8Array };
      this.inner.write(next.byteOffset, next.data);
    }
  }
}
