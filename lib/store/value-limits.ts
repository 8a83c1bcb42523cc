import { ValueTooLargeError, quoteKey } from '../errors';
import type { TierSlot, WriteOutcome } from './tier-slot';

/**
 * The shared tiers' value limits, as one write needs them: whether any shared tier can hold a
 * value of a given size, and the error naming each shared tier's limit when none did.
 */
export class ValueLimits {
  private readonly shared: readonly TierSlot[];
  /** The largest value a shared tier declares it stores (-1: no shared tier). */
  private readonly largest: number;

  constructor(slots: readonly TierSlot[]) {
    this.shared = slots.filter((s) => !s.local);
    this.largest = Math.max(-1, ...this.shared.map((s) => s.maxValueBytes));
  }

  /** Whether the chain has shared tiers and none of them declares it stores `bytes`. */
  noneHolds(bytes: number): boolean {
    return this.largest >= 0 && bytes > this.largest;
  }

  /**
   * Whether every shared tier refused the value (by size) in `outcomes`, one per slot of the
   * chain, in chain order; false without shared tiers.
   */
  refusedEverywhere(slots: readonly TierSlot[], outcomes: readonly WriteOutcome[]): boolean {
    if (this.shared.length === 0) return false;
    return slots.every((s, i) => s.local || outcomes[i] === 'tooLarge');
  }

  /** A value of `bytes` under `key`: `(memcached: 1047552 bytes, cassandra: refused it)`. */
  describe(bytes: number): string {
    return `(${this.shared
      .map(
        (s) => `${s.name}: ${bytes > s.maxValueBytes ? `${s.maxValueBytes} bytes` : 'refused it'}`,
      )
      .join(', ')})`;
  }

  /** The error of one value no shared tier holds. */
  error(op: string, key: string | undefined, bytes: number): ValueTooLargeError {
    return new ValueTooLargeError(
      `${op}${quoteKey(key)}: the encoded value is ${bytes} bytes, more than any shared tier stores ${this.describe(bytes)}; it was not stored, and the key was deleted from every tier`,
      bytes,
      this.limit(bytes),
    );
  }

  /** The error of `setMany` values no shared tier holds (`[key, bytes]` each). */
  manyError(refused: ReadonlyArray<[key: string, bytes: number]>): ValueTooLargeError {
    const [key, bytes] = refused[0];
    const values = refused.length === 1 ? '1 value' : `${refused.length} values`;
    const more = refused.length > 1 ? ` and ${refused.length - 1} more` : '';
    return new ValueTooLargeError(
      `setMany: ${values} more than any shared tier stores, ${JSON.stringify(key)}: ${bytes} bytes ${this.describe(bytes)}${more}; the others were written, these keys deleted from every tier`,
      bytes,
      this.limit(bytes),
    );
  }

  /** The largest limit known below `bytes` (a tier that refused without one: under `bytes`). */
  private limit(bytes: number): number {
    const known = this.shared.map((s) => s.maxValueBytes).filter((n) => n < bytes);
    return known.length > 0 ? Math.max(...known) : bytes - 1;
  }
}
