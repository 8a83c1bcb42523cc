import { TieredCacheError, type ErrorCode } from '../errors';
import type { CacheRecord } from '../serialization/codec';
import type { LocalRecord } from '../tiers/tier.interface';
import type { Reader } from './reader';
import { isStale } from './stored-entry';
import type { StoreParts } from './store-parts';
import type { TierSlot } from './tier-slot';

/** The code of the error thrown when the chain cannot be iterated. */
const CANNOT_ITERATE: ErrorCode = 'E_NOT_SUPPORTED';

/**
 * Lists the live entries of one store's namespace, version and current generation, read from
 * the farthest tier: every write reaches it, so it holds everything the chain stored (nearer
 * tiers hold copies, for shorter times). Nothing else is listed: not other namespaces, versions
 * or generations, not read-through leases, not the generation counter, not expired or stale
 * entries.
 *
 * Keys come back as the store was given them: a plain final key ends with the key itself; a
 * hashed one cannot be reversed, so such entries carry the key that was hashed (see
 * `Codec.encode`), and those written before entries carried it are skipped. A local tier of a
 * store without `keyFn` is keyed by caller keys already. With a `keyFn`, the keys listed are
 * the transformed ones (the store never sees the caller's own key again).
 */
export class Iteration {
  constructor(
    private readonly parts: StoreParts,
    private readonly reader: Reader,
  ) {}

  /**
   * `[key, record]` of every live entry. Rejects (at the first step) with a
   * {@link TieredCacheError} when the farthest tier cannot list its keys, and when that tier
   * fails while listing (also reported as an `error` event). Ends early when the generation
   * moves (`clear()`): what is left belongs to the old one. Starts once this store's
   * background writes have landed, so that it lists what this store wrote.
   */
  async *records(): AsyncGenerator<[key: string, record: CacheRecord]> {
    const { slots, keys, clock, generation } = this.parts;
    const slot = slots[slots.length - 1];
    const tier = slot.tier;
    if (!tier.capabilities.enumerate || typeof tier.entries !== 'function')
      throw cannotIterate(slot);
    await this.connect(slot);
    // This store's own writes still on their way to that tier (see `Writer.setEntry`) land first.
    await this.parts.background.drain();
    // The generation another instance may have bumped since this one last looked.
    await generation.refresh();
    const gen = keys.generation;
    const listing = tier.entries(slot.byCallerKey ? '' : keys.scanPrefix(gen));
    const entries = listing[Symbol.asyncIterator]();
    try {
      for (;;) {
        let step: IteratorResult<[string, unknown]>;
        try {
          step = await entries.next();
        } catch (err) {
          slot.fail('iterate', undefined, err);
          throw err;
        }
        if (step.done || keys.generation !== gen) return;
        const [at, payload] = step.value;
        const named = slot.byCallerKey ? at : keys.keyOf(at, gen);
        if (named === undefined) continue;
        const now = clock.now();
        const found = this.reader.decode(slot, payload, named ?? at, now);
        const record =
          found?.tagged === undefined ? found : await this.reader.checkTags(found, now);
        if (record === undefined || isStale(record, now)) continue;
        const key = named ?? (slot.mode === 'encoded' ? record.key : (payload as LocalRecord).key);
        if (key !== undefined) yield [key, record];
      }
    } finally {
      await entries.return?.();
    }
  }

  /** Connects the tier when it is not yet: a failure is reported, counted and thrown. */
  private async connect(slot: TierSlot): Promise<void> {
    if (slot.connected) return;
    try {
      await slot.ensureConnected();
    } catch (err) {
      slot.fail('connect', undefined, err);
      throw err;
    }
  }
}

function cannotIterate(slot: TierSlot): TieredCacheError {
  return new TieredCacheError(
    CANNOT_ITERATE,
    `iterate(): the farthest tier, "${slot.name}" (${slot.tier.kind}), cannot list its keys ` +
      `(its capabilities say enumerate: false): a chain can be iterated when its farthest tier ` +
      `can, as the memory and Cassandra tiers do (memcached has no key listing)`,
  );
}
