/**
 * Bytes that arrive in chunks and are read out in order into the caller's
 * buffer, as the stream HAL's `read(target)` wants them. Engine-neutral: the
 * Node socket stream, the XS guest's remote stream and the tests' fake
 * stream all keep their unread bytes in one.
 */
export class ChunkQueue {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  /** Unread bytes. */
  get length(): number {
    return this.bytes;
  }

  /** Keep `chunk` (not copied: the caller must not reuse it). */
  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Move up to `target.length` of the oldest bytes into `target`; returns how many. */
  read(target: Uint8Array): number {
    let n = 0;
    while (n < target.length && this.chunks.length > 0) {
      const head = this.chunks[0];
      const k = Math.min(head.length, target.length - n);
      target.set(head.subarray(0, k), n);
      n += k;
      if (k === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(k);
    }
    this.bytes -= n;
    return n;
  }
}
