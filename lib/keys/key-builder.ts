import { createHash } from 'node:crypto';
import { InvalidKeyError } from '../errors';
import { invalid } from '../options';
import { MAX_KEY_BYTES } from '../tiers/tier.interface';

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** The character after the generation: `:` in a plain key, `#` in a hashed one. */
const PLAIN_MARK = 0x3a;
const HASH_MARK = 0x23;
/** Built keys remembered (the memo is dropped whole when full, or when the generation changes). */
const MEMO_SIZE = 10_000;

export interface KeyBuilderOptions {
  /**
   * Keeps apps and environments apart on shared servers (1-64 of `[A-Za-z0-9_.-]`).
   * @default 'app'
   */
  namespace?: string;
  /**
   * Bumping it invalidates every key of this namespace at once.
   * @default 1
   */
  version?: string | number;
  /**
   * Custom transform applied to every caller key before it is namespaced. Must be pure (the same
   * input always gives the same output): built keys are memoized.
   */
  keyFn?: (key: string) => string;
}

/**
 * Builds the final key every tier sees:
 *
 *     <namespace>:<version>:<generation>:<key>       (plain)
 *     <namespace>:<version>:<generation>#<sha256>    (hashed)
 *
 * A key is hashed when the plain form would be over 250 bytes or holds a space, a control
 * character or DEL (bytes memcached's text protocol refuses in keys). Namespace and version are restricted to `[A-Za-z0-9_.-]` and the generation is a
 * decimal number, so the character after the generation (`:` or `#`) tells the two forms apart:
 * a hashed key can never equal a plain one.
 *
 * A key's lease (see `herd/`) swaps that character: `!` for a plain key, `~` for a hashed one,
 * so a lease key never equals a value key and keeps its length.
 *
 * The generation is bumped by `clear()`, which thereby invalidates the namespace without flushing
 * shared servers.
 */
export class KeyBuilder {
  readonly namespace: string;
  readonly version: string;
  private readonly keyFn?: (key: string) => string;
  private plainPrefix = '';
  private hashPrefix = '';
  private plainBudget = 0;
  private gen = 0;
  private readonly memo = new Map<unknown, string>();

  /**
   * @param maxKeyBytes the longest key every tier accepts, in bytes of UTF-8 (the store passes
   *   its tiers' smallest `maxKeyBytes`); longer keys are hashed.
   */
  constructor(
    options: KeyBuilderOptions = {},
    private readonly maxKeyBytes: number = MAX_KEY_BYTES,
  ) {
    this.namespace = options.namespace ?? 'app';
    this.version = String(options.version ?? '1');
    const rule = 'must be 1-64 characters of letters, digits, "_", "." or "-"';
    if (!NAME.test(this.namespace))
      throw invalid('namespace', `${JSON.stringify(options.namespace)} ${rule}`);
    if (!NAME.test(this.version))
      throw invalid('version', `${JSON.stringify(options.version)} ${rule}`);
    if (options.keyFn !== undefined && typeof options.keyFn !== 'function')
      throw invalid('keyFn', 'must be a function (key: string) => string');
    this.keyFn = options.keyFn;
    this.generation = 0;
    // A hashed key is the prefix, a generation of up to 16 digits and 43 characters of SHA-256.
    const longest = `${this.namespace}:${this.version}:`.length + 16 + 1 + 43;
    if (longest > maxKeyBytes)
      throw invalid(
        'namespace',
        `with version ${JSON.stringify(this.version)}, hashed keys would reach ${longest} bytes, over the ${maxKeyBytes} bytes a tier of this store accepts`,
      );
  }

  get generation(): number {
    return this.gen;
  }

  set generation(gen: number) {
    this.gen = gen;
    this.memo.clear();
    const base = `${this.namespace}:${this.version}:${gen}`;
    this.plainPrefix = `${base}:`;
    this.hashPrefix = `${base}#`;
    // A JS string of n UTF-16 units is at most 3n UTF-8 bytes: keys under this length need no count.
    this.plainBudget = Math.floor((this.maxKeyBytes - this.plainPrefix.length) / 3);
  }

  /** Key under which this namespace's generation counter lives (outside any generation). */
  get generationKey(): string {
    return `${this.namespace}:${this.version}:generation`;
  }

  /** The key of the read-through lease on a caller key (same tiers, never a value key). */
  leaseKey(key: string): string {
    const built = this.build(key);
    const at = this.plainPrefix.length - 1;
    return `${built.slice(0, at)}${built[at] === ':' ? '!' : '~'}${built.slice(at + 1)}`;
  }

  /**
   * For a final key `k` just built from `key` by {@link build}: the key that was hashed when `k`
   * is hashed (the caller's key, after `keyFn`), which the store keeps in the entry so that
   * iteration can name it; `undefined` for a plain key, which names itself.
   */
  hashedFrom(key: string, k: string): string | undefined {
    if (k.charCodeAt(this.hashPrefix.length - 1) !== HASH_MARK) return undefined;
    const source = String(key);
    return this.keyFn ? this.keyFn(source) : source;
  }

  /**
   * What every final key of generation `gen` (default: the current one) starts with, value keys
   * and lease keys alike: `<namespace>:<version>:<generation>`. Tiers list entries under it.
   */
  scanPrefix(gen: number = this.gen): string {
    return `${this.namespace}:${this.version}:${gen}`;
  }

  /**
   * Reads a final key back: for a plain value key of generation `gen` (default: the current
   * one), the key it was built from (after `keyFn`); `null` for a hashed value key of that
   * generation (the hash cannot be reversed: see {@link hashedFrom}); `undefined` for any other
   * key (another namespace, version or generation, a lease, the generation counter).
   */
  keyOf(k: string, gen: number = this.gen): string | null | undefined {
    const prefix = this.scanPrefix(gen);
    if (!k.startsWith(prefix)) return undefined;
    const mark = k.charCodeAt(prefix.length);
    if (mark === PLAIN_MARK && k.length > prefix.length + 1) return k.slice(prefix.length + 1);
    return mark === HASH_MARK ? null : undefined;
  }

  /** The final key for a caller key. Throws a `TypeError` for keys that are not usable. */
  build(key: string): string {
    // Recently built keys come from a bounded memo: a hit returns the same flat string object,
    // whose hash is cached, so the tiers' own map lookups skip re-hashing a fresh concatenation.
    const memoized = this.memo.get(key);
    if (memoized !== undefined) return memoized;
    const built = this.compute(key);
    if (this.memo.size >= MEMO_SIZE) this.memo.clear();
    this.memo.set(key, built);
    return built;
  }

  private compute(key: string): string {
    if (typeof key !== 'string') {
      if (typeof key === 'number' && Number.isFinite(key)) key = String(key);
      else
        throw new InvalidKeyError(
          `cache key must be a string, got ${key === null ? 'null' : typeof key}`,
        );
    }
    if (this.keyFn) {
      key = this.keyFn(key);
      if (typeof key !== 'string')
        throw new InvalidKeyError(`keyFn returned ${typeof key}, not a string`);
    }
    const length = key.length;
    if (length === 0) throw new InvalidKeyError('cache key must not be empty');
    // One pass over the key (a regular expression costs more on the hot path of short keys).
    let unsafe = false;
    let surrogates = false;
    for (let i = 0; i < length; i++) {
      const c = key.charCodeAt(i);
      if (c <= 0x20 || c === 0x7f) unsafe = true;
      else if (c >= 0xd800 && c <= 0xdfff) surrogates = true;
    }
    if (surrogates && !key.isWellFormed()) {
      // A lone surrogate encodes to U+FFFD, so two different keys would share bytes (and a hash).
      throw new InvalidKeyError(
        'cache key holds a lone UTF-16 surrogate and has no exact UTF-8 form',
      );
    }
    if (
      !unsafe &&
      (length <= this.plainBudget || Buffer.byteLength(this.plainPrefix + key) <= this.maxKeyBytes)
    ) {
      return this.plainPrefix + key;
    }
    return this.hashPrefix + createHash('sha256').update(key).digest('base64url');
  }
}
