/**
 * A hang guard for decoders fed damaged flash: counts flash calls since the
 * last `reset()` and throws Hang past a budget (every loop in the storage
 * code reads the flash, so a loop that does not end shows up here).
 */
import type { FlashPartition, FlashStatus } from '../../firmware/hal/flash.ts';
import { setErrorName } from '../../firmware/base/error-name.ts';

export class Hang extends Error {
  constructor(budget: number) {
    super(`more than ${budget} flash operations in one call: it does not terminate`);
    setErrorName(this, 'Hang');
  }
}

export class BudgetFlash implements FlashPartition {
  private used = 0;

  constructor(
    readonly inner: FlashPartition,
    private readonly budget: number,
  ) {}

  /** Start counting again (call before each outbox call you want bounded). */
  reset(): void {
    this.used = 0;
  }

  status(): FlashStatus {
    return this.inner.status();
  }

  read(byteOffset: number, target: Uint8Array): void {
    this.spend();
    this.inner.read(byteOffset, target);
  }

  write(byteOffset: number, data: Uint8Array): void {
    this.spend();
    this.inner.write(byteOffset, data);
  }

  eraseBlock(block: number): void {
    this.spend();
    this.inner.eraseBlock(block);
  }

  private spend(): void {
    if (++this.used > this.budget) throw new Hang(this.budget);
  }
}
