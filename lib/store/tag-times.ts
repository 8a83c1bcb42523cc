import { createHash, randomInt } from 'node:crypto';
import type { TagInvalidation } from '../bus/invalidation-message';
import type { Clock } from '../clock';
import { TieredCacheError } from '../errors';
import type { KeyBuilder } from '../keys/key-builder';
import { describeValue, invalid, onlyKnownKeys } from '../options';
import {
  MAX_TAG_BYTES,
  MAX_TAGS_PER_ENTRY,
  type CacheRecord,
  type Codec,
  type Tagged,
} from '../serialization/codec';
import { FAILED, type TierSlot } from './tier-slot';

export type TagMode = TagInvalidation['mode'];

/** Options of `invalidateTags`. */
export interface InvalidateTagsOptions {
  /**
   * `'delete'`: the entries are misses for every read. `'expire'`: they are stale, served by
   * read-through within their grace period while one caller refreshes them.
   * @default 'delete'
   */
  mode?: TagMode;
}

/** {@link TagTimes.judge}: the entry is not covered by any invalidation of its tags. */
export const FRESH = 0;
/** {@link TagTimes.judge}: a `delete` invalidation covers the entry. */
export const GONE = -1;
/** {@link TagTimes.judge}: some of its tags' times are not known here: {@link TagTimes.load} them. */
export const UNKNOWN = -2;

/** How long times read from the authority are trusted while the bus is up, ms. */
const TRUST_WITH_BUS_MS = 60_000;
/** How long after a failed read of the authority it is asked again, ms (last known times meanwhile). */
const RETRY_MS = 1000;
/** Tags whose times are kept at most, with an authority (the oldest tenth is dropped past it). */
const MAX_KNOWN = 100_000;
/** At most this long before their trust ends, times hits use are read again (background), ms. */
const AHEAD_MS = 250;
/** Tags read at most in one waited read of tag times (see `TagTimes.withLapsed`). */
const LAPSED_BATCH = 1000;
/** Stamps per millisecond (see {@link TagTimes.stamp}). */
const STAMPS_PER_MS = 1024;
const STAMP_STEP_MS = 1 / STAMPS_PER_MS;
/** Rounds of rewriting a time that a concurrent, earlier invalidation overwrote. */
const WRITE_ROUNDS = 3;

/**
 * What this instance knows of one tag: its last `delete` and `expire` times and the stamp origin
 * of each (0: several, or unknown), until when.
 */
interface Known {
  d: number;
  dBy: number;
  e: number;
  eBy: number;
  /** Clock ms after which the authority must be asked again (`Infinity` without one). */
  until: number;
}

export interface TagTimesSetup {
  /** The shared tier holding tag times (the counter authority); none: this process is the truth. */
  authority: TierSlot | undefined;
  keys: KeyBuilder;
  codec: Codec;
  clock: Clock;
  /** How long times read from the authority are trusted without the bus, ms. */
  refreshMs: number;
  /** Whether the invalidation bus is up (then it tells of every invalidation at once). */
  busUp: () => boolean;
}

/**
 * When each tag was last invalidated, in each mode. Entries carry their tags and when they were
 * written (see `Tagged`); a read compares: an entry written at or before a `delete` of one of its
 * tags is gone, at or before an `expire` it is stale.
 *
 * The times live on the authority (the farthest shared tier that counts), under a key per tag and
 * mode outside any generation, and are cached here: trusted for `refreshMs` without the bus, for
 * a minute while the bus is up (it brings every invalidation, with its time, and a missed one
 * empties this cache). Without an authority (memory only) this process's times are the truth, and
 * the bus carries them to the other instances.
 */
export class TagTimes {
  /** This store's stamp origin: a random number, never 0, that its tagged entries carry. */
  readonly origin = randomInt(1, 2 ** 32);
  private readonly known = new Map<string, Known>();
  /** Tags whose times are being read from the authority, and that read. */
  private readonly loading = new Map<string, Promise<void>>();
  /** Tags to read again in the background, at the next turn of the event loop. */
  private soon = new Set<string>();
  private last = 0;
  /** Bumped whenever something known here changes: verdicts cached on entries expire with it. */
  private version = 0;
  /** How long before their trust ends times are read again in the background, ms. */
  private readonly ahead: number;

  constructor(private readonly setup: TagTimesSetup) {
    this.ahead = Math.min(AHEAD_MS, setup.refreshMs / 4);
  }

  /**
   * Now on the store's clock, after every earlier stamp of this store: the time of a tagged write
   * and of an invalidation alike, so that a write and an invalidation made by this store in one
   * millisecond keep their order (in steps of 1/1024 ms, which float64 holds exactly for epoch
   * times). Entries carry their store's {@link origin}, and so do the invalidations of a store
   * without an authority: only those are compared to the fraction. Elsewhere (between stores,
   * and for every time kept on a shared tier) a write and an invalidation in one millisecond
   * count as the write first: the entry is covered.
   */
  stamp(): number {
    const now = this.setup.clock.now();
    this.last = now > this.last ? now : this.last + STAMP_STEP_MS;
    return this.last;
  }

  /**
   * Whether the entry tagged `tagged` is {@link FRESH}, {@link GONE}, stale (then: the time it
   * became so, a positive number) or whether its tags' times must be loaded first
   * ({@link UNKNOWN}). Synchronous: the hit path's check.
   */
  judge(tagged: Tagged, now: number): number {
    // A hit re-reads an entry's verdict while nothing known here changed (see `version`). Kept
    // small, so that it is inlined into the hit path.
    const memo = tagged.memo;
    return memo !== undefined && memo.version === this.version && now < memo.until
      ? memo.verdict
      : this.judgeAll(tagged, now, memo);
  }

  /** {@link judge} from the times known here, remembered on `tagged`. */
  private judgeAll(tagged: Tagged, now: number, memo: Tagged['memo']): number {
    const local = this.setup.authority === undefined;
    let stale = 0;
    let until = Infinity;
    let ending: string[] | undefined;
    for (const tag of tagged.tags) {
      const k = this.known.get(tag);
      if (k === undefined) {
        if (local) continue; // never invalidated here
        return UNKNOWN;
      }
      if (k.until <= now) return UNKNOWN;
      if (k.until - now < this.ahead && !this.loading.has(tag) && !this.soon.has(tag))
        (ending ??= []).push(tag);
      if (k.until < until) until = k.until;
      if (covers(tagged, k.d, k.dBy)) return GONE;
      if (k.e > stale && covers(tagged, k.e, k.eBy)) stale = k.e;
    }
    // Times about to lose their trust are read again in the background: hits need not wait. The
    // verdict stands until they end, or until the read lands (it changes `version`).
    if (ending !== undefined) this.refresh(ending);
    const verdict = stale > 0 ? stale : FRESH;
    const memoUntil = until - now < this.ahead ? until : until - this.ahead;
    if (memo === undefined) tagged.memo = { version: this.version, until: memoUntil, verdict };
    else [memo.version, memo.until, memo.verdict] = [this.version, memoUntil, verdict];
    return verdict;
  }

  /**
   * Reads `tags`' times again in the background, with the others asked for in this turn of the
   * event loop: one batch.
   */
  private refresh(tags: string[]): void {
    const batch = this.soon;
    if (batch.size === 0)
      setImmediate(() => {
        this.soon = new Set();
        void this.read([...batch]);
      }).unref();
    for (const tag of tags) batch.add(tag);
  }

  /** Reads the times of those of `tags` not known (or no longer trusted) from the authority. */
  async load(tags: readonly string[]): Promise<void> {
    if (this.setup.authority === undefined) return;
    const now = this.setup.clock.now();
    const waits: Array<Promise<void>> = [];
    const fetch: string[] = [];
    for (const tag of tags) {
      const k = this.known.get(tag);
      if (k !== undefined && k.until > now) continue;
      const inFlight = this.loading.get(tag);
      if (inFlight !== undefined) waits.push(inFlight);
      else if (!fetch.includes(tag)) fetch.push(tag);
    }
    if (fetch.length > 0) waits.push(this.read(this.withLapsed(fetch, now)));
    if (waits.length > 0) await Promise.all(waits);
  }

  /**
   * `tags` and, up to {@link LAPSED_BATCH} in all (among the first ten times as many known),
   * other known tags whose trust has ended (nothing read them meanwhile): a read that must wait
   * anyway brings them too, so the hits that follow a quiet while wait for one read, not one
   * each.
   */
  private withLapsed(tags: string[], now: number): string[] {
    const batch = new Set(tags);
    let scanned = 0;
    for (const [tag, k] of this.known) {
      if (batch.size >= LAPSED_BATCH || ++scanned > 10 * LAPSED_BATCH) break;
      if (k.until <= now && !this.loading.has(tag)) batch.add(tag);
    }
    return [...batch];
  }

  /** {@link fetch}es `tags`' times, known as being read until it ends (see {@link loading}). */
  private read(tags: string[]): Promise<void> {
    const read = this.fetch(tags).finally(() => {
      for (const tag of tags) if (this.loading.get(tag) === read) this.loading.delete(tag);
    });
    for (const tag of tags) this.loading.set(tag, read);
    return read;
  }

  /**
   * Invalidates `tags` (checked, see {@link tagList}) in `options.mode` as of now, here at once:
   * the list to announce and {@link persist}.
   */
  invalidate(tags: unknown, options: InvalidateTagsOptions): TagInvalidation[] {
    const list = tagList('tags', tags) ?? [];
    onlyKnownKeys('invalidateTags options', options, ['mode']);
    const mode = options.mode ?? 'delete';
    if (mode !== 'delete' && mode !== 'expire')
      throw invalid(
        'mode',
        `must be 'delete' or 'expire', got ${typeof mode === 'string' ? JSON.stringify(mode) : describeValue(mode)}`,
      );
    const at = this.stamp();
    // Times kept on a shared tier carry no origin (see `persist`): compared to the millisecond
    // everywhere, here included, so that every instance judges alike.
    const by = this.setup.authority === undefined ? this.origin : 0;
    const invalidations = list.map((tag) => ({ tag, mode, at, by }));
    this.learn(invalidations);
    return invalidations;
  }

  /**
   * Stores invalidations made here on the authority, as a number of 1/1024 ms (times are stamped
   * in those steps) that only ever rises there: with the tier's `raise` (a max-register: an
   * earlier invalidation whose write lands late never lowers a later one), else written and read
   * back, then written again while a lower time is found. The stamp origin is not stored (one
   * number per tag and mode): a reader of the authority compares to the millisecond, ties
   * covered. Rejects (`E_TIER_FAILED`) when the authority cannot store it: it then holds here
   * (and where the bus took it) only.
   */
  async persist(list: readonly TagInvalidation[]): Promise<void> {
    const slot = this.setup.authority;
    if (slot === undefined || list.length === 0) return;
    const { at, mode } = list[0];
    const n = Math.round(at * STAMPS_PER_MS);
    const keys = list.map(({ tag }) => this.keyOf(tag, mode));
    const ttlMs = slot.ttlFor(0);
    const failed = () =>
      new TieredCacheError(
        'E_TIER_FAILED',
        `invalidateTags(${list.map((t) => JSON.stringify(t.tag)).join(', ')}): ${slot.name}, which holds tag times, could not store the invalidation; other instances may not see it`,
      );
    const tier = slot.tier;
    if (tier.raise !== undefined) {
      const raised = await slot.call('invalidateTags', undefined, () =>
        Promise.all(keys.map((key) => tier.raise!(key, n, ttlMs))),
      );
      if (raised === FAILED) throw failed();
      return;
    }
    const value = Buffer.from(String(n), 'latin1');
    let pending = keys;
    for (let round = 0; round < WRITE_ROUNDS && pending.length > 0; round++) {
      const writes = pending.map((key) => ({ key, value, ttlMs }));
      if ((await slot.call('invalidateTags', undefined, () => tier.setMany(writes))) === FAILED)
        throw failed();
      // A concurrent invalidation with an earlier time may have been stored last: ours again.
      const now = await slot.call('invalidateTags', undefined, () => tier.getMany(pending));
      if (now === FAILED) break;
      pending = pending.filter((_, i) => this.timeOf(now[i]) < at);
    }
  }

  /** Invalidations heard of (from the bus, or made here): kept, each time only ever raised. */
  learn(list: readonly TagInvalidation[]): void {
    const until = this.setup.authority === undefined ? Infinity : 0;
    let changed = false;
    for (const { tag, mode, at, by } of list) {
      let k = this.known.get(tag);
      if (k === undefined) this.known.set(tag, (k = { d: 0, dBy: 0, e: 0, eBy: 0, until }));
      if (raise(k, mode, at, by)) changed = true;
    }
    if (changed) this.version++;
    this.bound();
  }

  /** Invalidations may have been missed (the bus): forget what the authority said. */
  forget(): void {
    if (this.setup.authority === undefined) return;
    this.version++;
    for (const k of this.known.values()) k.until = 0;
  }

  private async fetch(tags: string[]): Promise<void> {
    const slot = this.setup.authority!;
    const keys = tags.flatMap((tag) => [this.keyOf(tag, 'delete'), this.keyOf(tag, 'expire')]);
    const found = await slot.call('tags', undefined, () => slot.tier.getMany(keys));
    const now = this.setup.clock.now();
    // The authority failed: what is known stands (an invalidation needs the authority, so none
    // can have been made without it, and the bus still brings those made elsewhere).
    const until =
      found === FAILED
        ? now + RETRY_MS
        : now + (this.setup.busUp() ? TRUST_WITH_BUS_MS : this.setup.refreshMs);
    // Verdicts cached on entries stand unless a time changed: each expires with its tags' trust.
    let changed = false;
    tags.forEach((tag, i) => {
      const k = this.known.get(tag) ?? { d: 0, dBy: 0, e: 0, eBy: 0, until };
      if (found !== FAILED) {
        // The authority keeps no origin (see `persist`): to the millisecond.
        if (raise(k, 'delete', this.timeOf(found[2 * i]), 0)) changed = true;
        if (raise(k, 'expire', this.timeOf(found[2 * i + 1]), 0)) changed = true;
      }
      k.until = until;
      this.known.set(tag, k);
    });
    if (changed) this.version++;
    this.bound();
  }

  /** A time read from the authority (see {@link persist}); 0 for none, or bytes that are not one. */
  private timeOf(payload: unknown): number {
    if (!(payload instanceof Uint8Array)) return 0;
    try {
      const n = this.setup.codec.decode(payload).value;
      return typeof n === 'number' && Number.isSafeInteger(n) ? n / STAMPS_PER_MS : 0;
    } catch {
      return 0;
    }
  }

  /** The authority's key of `tag`'s time in `mode`: outside every generation, always hashed. */
  private keyOf(tag: string, mode: TagMode): string {
    const { namespace, version } = this.setup.keys;
    const hash = createHash('sha256').update(tag).digest('base64url');
    return `${namespace}:${version}:tag-${mode}#${hash}`;
  }

  private bound(): void {
    if (this.setup.authority === undefined || this.known.size <= MAX_KNOWN) return;
    this.version++;
    let drop = MAX_KNOWN / 10;
    for (const tag of this.known.keys()) {
      this.known.delete(tag);
      if (--drop <= 0) break;
    }
  }
}

/**
 * Whether an invalidation at `t` (0: none) by origin `by` covers the entry `tagged`: exactly
 * when the same store stamped both, else to the millisecond, ties covered.
 */
function covers(tagged: Tagged, t: number, by: number): boolean {
  if (t === 0) return false;
  return by === tagged.by ? tagged.at <= t : Math.floor(tagged.at) <= Math.floor(t);
}

/**
 * Raises `k`'s time in `mode` to `at` by `by` (a tie between origins: origin unknown); whether
 * anything changed.
 */
function raise(k: Known, mode: TagMode, at: number, by: number): boolean {
  const [t, tBy] = mode === 'delete' ? [k.d, k.dBy] : [k.e, k.eBy];
  let next: [number, number];
  if (at > t) next = [at, by];
  else if (at === t && by !== tBy && tBy !== 0) next = [t, 0];
  else return false;
  if (mode === 'delete') [k.d, k.dBy] = next;
  else [k.e, k.eBy] = next;
  return true;
}

/**
 * What a read may return of `record`, given {@link TagTimes.judge}'s `verdict` (not
 * {@link UNKNOWN}): the record itself; nothing; or, stale since a time, a view of it as if its
 * TTL had ended then, keeping its own grace period (an entry without grace is then gone).
 */
export function afterTags(
  record: CacheRecord,
  verdict: number,
  now: number,
): CacheRecord | undefined {
  if (verdict === FRESH) return record;
  if (verdict < 0) return undefined;
  // Not a spread: a local record's `key` and `tagged` are getters.
  const { value, expiresAt, staleAt, delta, key, tagged } = record;
  const grace = staleAt ? Math.max(0, expiresAt - staleAt) : 0;
  const end = verdict + grace;
  if (grace === 0 || end <= now) return undefined;
  const ends = expiresAt === 0 ? end : Math.min(expiresAt, end);
  return { value, expiresAt: ends, staleAt: verdict, delta, key, tagged };
}

/**
 * The tags option of a write, checked: `undefined` for none, else a frozen list without
 * repeats. Throws an `InvalidOptionError` naming `path` for anything else.
 */
export function tagList(path: string, tags: unknown): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  if (!Array.isArray(tags))
    throw invalid(path, `must be a list of strings, got ${describeValue(tags)}`);
  const list = [...new Set(tags as unknown[])];
  list.forEach((tag, i) => checkTag(`${path}[${i}]`, tag));
  if (list.length > MAX_TAGS_PER_ENTRY)
    throw invalid(path, `${list.length} tags, at most ${MAX_TAGS_PER_ENTRY} per entry`);
  return list.length === 0 ? undefined : Object.freeze(list as string[]);
}

/**
 * {@link tagList} for a call that may write nothing (a read-through hit): the tags as given
 * when they are valid, checked without copying them (the write makes the checked copy).
 * @throws InvalidOptionError as {@link tagList} does.
 */
export function checkTags(path: string, tags: unknown): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  if (!Array.isArray(tags) || tags.length > MAX_TAGS_PER_ENTRY) return tagList(path, tags);
  for (const tag of tags as unknown[]) {
    if (
      typeof tag !== 'string' ||
      tag === '' ||
      (tag.length * 3 > MAX_TAG_BYTES && Buffer.byteLength(tag) > MAX_TAG_BYTES) ||
      !tag.isWellFormed()
    )
      return tagList(path, tags);
  }
  return tags.length === 0 ? undefined : (tags as string[]);
}

function checkTag(path: string, tag: unknown): void {
  if (typeof tag !== 'string') throw invalid(path, `must be a string, got ${describeValue(tag)}`);
  if (tag === '') throw invalid(path, 'must not be empty');
  if (!tag.isWellFormed()) throw invalid(path, 'holds a lone UTF-16 surrogate');
  const bytes = Buffer.byteLength(tag);
  if (bytes > MAX_TAG_BYTES)
    throw invalid(path, `is ${bytes} bytes long, at most ${MAX_TAG_BYTES} (UTF-8)`);
}
