import { MemcachedError } from '../../errors';
import { raisedBytes, readRaised } from '../max-register';
import type { MemcachedConnection } from './connection';
import { Opcode, Status } from './protocol';

/**
 * Rounds of {@link raiseOn} before it gives up. A round is lost only when another client changed
 * the item between this round's GET and its write (in practice: another raise of the key stored
 * a number), so this bounds the concurrent raises of one key that a call can lose to, not the
 * time it may spin: with raisers arriving in ascending order, the highest loses one round to each
 * lower one. Those of one tier instance are merged first (see {@link RaiseMerger}): the bound is
 * on other clients'.
 */
export const RAISE_ROUNDS = 50;

/**
 * The max-register of `MemcachedTier.raise` on one server, by the binary protocol's CAS:
 *
 * 1. GET the item with its 8-byte CAS version;
 * 2. absent: ADD `n`; done when stored, else (someone added it meanwhile) back to 1;
 * 3. present as ASCII decimal digits `>= n`: done, nothing written (its expiry stays too);
 * 4. otherwise (lower, or not a number: replaced) SET `n` carrying the GET's CAS; done when
 *    stored, else (changed or gone since the GET, "key exists" or "key not found") back to 1.
 *
 * Every write is conditional on what this call read, so a write held up anywhere (a slow socket,
 * a stopped server that resumes) stores nothing once the item has changed: a higher number
 * stored meanwhile is never overwritten. Each write sets the expiry to `expiry` (memcached's
 * field, see `toMemcachedExpiry`).
 *
 * @throws MemcachedError on a connection error, a timeout or an error status, as the requests
 *   it sends do; with status "key exists" (not retryable) after {@link RAISE_ROUNDS} lost rounds.
 */
export async function raiseOn(
  connection: MemcachedConnection,
  key: string,
  n: number,
  expiry: number,
): Promise<void> {
  const bytes = raisedBytes(n);
  for (let round = 0; round < RAISE_ROUNDS; round++) {
    const found = await connection.getWithCas(key);
    if (found === undefined) {
      if ((await connection.store(Opcode.Add, key, bytes, expiry)) === 'stored') return;
      // 'exists': added meanwhile, read it. ('too-large' cannot happen: at most 16 bytes.)
      continue;
    }
    const held = readRaised(found.value);
    if (held !== undefined && held >= n) return;
    if (await connection.setIfUnchanged(key, bytes, expiry, found.cas)) return;
  }
  throw new MemcachedError(
    `memcached ${connection.address}: raise of ${JSON.stringify(key)} to ${n} gave up: the ` +
      `item changed under each of ${RAISE_ROUNDS} compare-and-set rounds`,
    connection.address,
    false,
    { status: Status.KeyExists },
  );
}

/** One key's raises in a {@link RaiseMerger}: the one sent, and the highest one waiting for it. */
interface KeyRaises {
  /** The number being raised to now. */
  n: number;
  sent: Promise<void>;
  /** The highest raise asked for meanwhile above `n`: sent once `sent` settles. */
  next:
    | { n: number; ttlMs: number; done: Promise<void>; start: (p: Promise<void>) => void }
    | undefined;
}

/**
 * Merges the raises of one key made concurrently through one tier instance, so that a burst of
 * them (one process raising a key many times at once, in ascending order: the worst case of
 * {@link RAISE_ROUNDS}) costs at most two raises one after the other, not a round per lower one:
 * - a raise to at most the number being raised to now joins that raise (once it is done, the
 *   register holds at least that number);
 * - a higher one waits for it, then the highest of those that came meanwhile is sent, with its
 *   TTL, and settles them all.
 *
 * A call that joined another settles as that one does (rejecting with its error). The outcome is
 * that of one order of the concurrent calls, which a max-register allows: the lower ones first.
 */
export class RaiseMerger {
  private readonly keys = new Map<string, KeyRaises>();

  /** @param send raises `key` to `n` (validated already), e.g. {@link raiseOn} with retries. */
  constructor(private readonly send: (key: string, n: number, ttlMs: number) => Promise<void>) {}

  /** Raises `key` to `n`, joining or following a raise of the same key in flight. */
  raise(key: string, n: number, ttlMs: number): Promise<void> {
    const current = this.keys.get(key);
    if (current === undefined) return this.start(key, n, ttlMs);
    if (n <= current.n) return current.sent;
    const next = current.next;
    if (next === undefined) {
      let start!: (p: Promise<void>) => void;
      const done = new Promise<void>((resolve) => (start = resolve));
      current.next = { n, ttlMs, done, start };
      return done;
    }
    if (n > next.n) Object.assign(next, { n, ttlMs });
    return next.done;
  }

  private start(key: string, n: number, ttlMs: number): Promise<void> {
    const sent = new Promise<void>((resolve) => resolve(this.send(key, n, ttlMs)));
    const entry: KeyRaises = { n, sent, next: undefined };
    this.keys.set(key, entry);
    // Synchronously on settling: no call finds a settled raise in flight.
    const settled = () => {
      const next = entry.next;
      if (next === undefined) this.keys.delete(key);
      else next.start(this.start(key, next.n, next.ttlMs));
    };
    sent.then(settled, settled);
    return sent;
  }
}
