import { randomUUID } from 'node:crypto';
import type { LeaseOutcome, StoredEntry } from '../store/stored-entry';
import type { EntryStore } from './entry-store';
import type { ResolvedHerdOptions } from './herd.options';
import type { WaitClock } from './wait-clock';

/** Polling a key another process is computing: first pause, growth, and longest pause (ms). */
const POLL_FIRST_MS = 5;
const POLL_GROWTH = 1.5;
const POLL_MAX_MS = 100;
/**
 * How many new holders (processes that took a crashed holder's lease over) a waiter keeps
 * waiting for, after the one it first found; past them it computes itself.
 */
export const MAX_TAKEOVERS = 3;

/** A waiter's view of who holds the lease it waits on. */
interface Watch {
  /** The holder's token; `undefined` when the lease was free, `null` when it could not be read. */
  holder: Buffer | undefined | null;
  /** When this waiter first saw that holder. */
  since: number;
  /** When it next asks who holds the lease. */
  deadline: number;
  /** New holders seen so far. */
  takeovers: number;
}

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
  /** When (on the wait clock) it was last asked for. */
  private at = 0;

  constructor(
    private readonly store: EntryStore,
    private readonly key: string,
    private readonly call: ResolvedHerdOptions,
    holder: string,
    private readonly clock: WaitClock,
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
    const at = this.clock.now();
    this.outcome = await this.store.acquireLease(this.leaseKey, this.token, this.ttl);
    this.at = at;
  }

  /**
   * Another process holds the lease: polls the shared tiers with backoff until `answers` accepts
   * an entry (returned), the lease frees up (then it is ours and this resolves undefined), or
   * waiting is over (undefined, still `held`): see {@link keepWaiting}.
   */
  async waitForOther<T>(
    answers: (entry: StoredEntry<T> | undefined) => entry is StoredEntry<T>,
  ): Promise<StoredEntry<T> | undefined> {
    const since = this.clock.now();
    const watch: Watch = {
      holder: await this.store.leaseHolder(this.leaseKey),
      since,
      deadline: since + this.call.lockTimeout,
      takeovers: 0,
    };
    let pause = POLL_FIRST_MS;
    for (;;) {
      await this.clock.sleep(Math.max(1, Math.min(pause, watch.deadline - this.clock.now())));
      pause = Math.min(pause * POLL_GROWTH, POLL_MAX_MS);
      const entry = await this.store.getEntry<T>(this.key, { scope: 'shared' });
      if (answers(entry)) return entry;
      // A holder that crashed: its lease runs out and one waiter takes it over.
      await this.acquire();
      if (this.outcome !== 'held') return undefined;
      if (this.clock.now() >= watch.deadline && !(await this.keepWaiting(watch))) return undefined;
    }
  }

  /**
   * `lockTimeout` has passed since the waiter saw the lease's holder: whether to go on waiting
   * (with a new deadline) rather than compute. A new holder has taken a crashed one's lease over
   * and is computing: it is waited for, `lockTimeout` from when it was seen, up to
   * {@link MAX_TAKEOVERS} times. The holder first seen is waited for until its lease must have
   * run out (its TTL plus the tier's TTL resolution). A free lease is taken (then this is false,
   * and the lease ours); one nobody can read is not waited on.
   */
  private async keepWaiting(watch: Watch): Promise<boolean> {
    let holder = await this.store.leaseHolder(this.leaseKey);
    if (holder === undefined) {
      await this.acquire();
      if (this.outcome !== 'held') return false;
      // Taken by another waiter between the two requests: that is a takeover.
      holder = await this.store.leaseHolder(this.leaseKey);
    }
    if (holder === null) return false;
    const now = this.clock.now();
    // Unreadable when the wait began: counted as the same holder (the shorter wait).
    const same = holder !== undefined && (watch.holder === null || watch.holder?.equals(holder));
    if (same) {
      const outlived = watch.since + this.ttl + this.store.leaseTtlResolutionMs;
      if (now >= outlived) return false;
      watch.holder = holder;
      watch.deadline = outlived;
      return true;
    }
    if (watch.takeovers >= MAX_TAKEOVERS) return false;
    watch.takeovers++;
    watch.holder = holder;
    watch.since = now;
    watch.deadline = now + this.call.lockTimeout;
    return true;
  }

  /**
   * Whether our lease was taken from us by a delete. A lease lives at least its TTL less the
   * tier's TTL resolution, so one missing before that was invalidated; after it, it may just have
   * run out, and the value is written as computed. A tier that cannot answer does not stop the
   * write.
   */
  async lost(): Promise<boolean> {
    if (this.clock.now() - this.at >= this.ttl - this.store.leaseTtlResolutionMs) return false;
    const holder = await this.store.leaseHolder(this.leaseKey);
    return holder !== null && !(holder !== undefined && holder.equals(this.token));
  }

  /** Releases the lease if we still hold it. */
  release(): Promise<void> {
    return this.store.releaseLease(this.leaseKey, this.token);
  }
}
