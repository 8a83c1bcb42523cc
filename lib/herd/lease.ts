import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeaseOutcome, StoredEntry } from '../store/stored-entry';
import type { EntryStore } from './entry-store';
import type { ResolvedHerdOptions } from './herd.options';

/** Polling a key another process is computing: first pause, growth, and longest pause (ms). */
const POLL_FIRST_MS = 5;
const POLL_GROWTH = 1.5;
const POLL_MAX_MS = 100;

/**
 * One computed value's read-through lease, on the store's lease tier: asked for once, waited on
 * while another process holds it, checked before and after the write, released by its holder.
 * The lease key is built once, here.
 */
export class Lease {
  /** What asking for it gave; `held` until asked. */
  outcome: LeaseOutcome = 'held';
  private readonly leaseKey: string;
  private readonly token: Buffer;
  /** `performance.now()` when it was last asked for. */
  private at = 0;

  constructor(
    private readonly store: EntryStore,
    private readonly key: string,
    private readonly call: ResolvedHerdOptions,
    holder: string,
  ) {
    this.leaseKey = store.leaseKey(key);
    this.token = Buffer.from(`${holder}:${randomUUID()}`);
  }

  /**
   * How long the lease lives: `lockTimeout`, and never less than the tier's TTL resolution (0
   * would mean forever).
   */
  private get ttl(): number {
    return Math.max(this.call.lockTimeout, this.store.leaseTtlResolutionMs);
  }

  /** Asks for the lease; records the outcome and when it was asked. */
  async acquire(): Promise<void> {
    // Timed from before the request: the lease may have been created any time after this.
    const at = performance.now();
    this.outcome = await this.store.acquireLease(this.leaseKey, this.token, this.ttl);
    this.at = at;
  }

  /**
   * Another process holds the lease: polls the shared tiers with backoff until `answers` accepts
   * an entry (returned), the lease frees up (then it is ours and this resolves undefined), or
   * `lockTimeout` passes (undefined, still `held`).
   */
  async waitForOther<T>(
    answers: (entry: StoredEntry<T> | undefined) => entry is StoredEntry<T>,
  ): Promise<StoredEntry<T> | undefined> {
    const deadline = performance.now() + this.call.lockTimeout;
    let pause = POLL_FIRST_MS;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * POLL_GROWTH, POLL_MAX_MS);
      const entry = await this.store.getEntry<T>(this.key, { scope: 'shared' });
      if (answers(entry)) return entry;
      // A holder that crashed: its lease runs out and one waiter takes it over.
      await this.acquire();
      if (this.outcome !== 'held') return undefined;
    }
  }

  /**
   * Whether our lease was taken from us by a delete. A lease lives at least its TTL less the
   * tier's TTL resolution, so one missing before that was invalidated; after it, it may just have
   * run out, and the value is written as computed. A tier that cannot answer does not stop the
   * write.
   */
  async lost(): Promise<boolean> {
    if (performance.now() - this.at >= this.ttl - this.store.leaseTtlResolutionMs) return false;
    const holder = await this.store.leaseHolder(this.leaseKey);
    return holder !== null && !(holder !== undefined && holder.equals(this.token));
  }

  /** Releases the lease if we still hold it. */
  release(): Promise<void> {
    return this.store.releaseLease(this.leaseKey, this.token);
  }
}
