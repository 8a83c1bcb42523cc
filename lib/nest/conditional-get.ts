import { createHash } from 'node:crypto';
import type { Clock } from '../clock';
import type { CacheLookup } from '../herd/read-through';
import {
  at,
  boolean,
  describeValue,
  invalid,
  onlyKnownKeys,
  optionNames,
  optionsObject,
} from '../options';
import type { CacheableRequest } from './decorated-method';

/**
 * Conditional GET for `@Cached()` handlers: the entry a handler stores (its body, status, strong
 * `ETag` and when it was stored), `If-None-Match` answered `304 Not Modified` from the cache, and
 * the optional `Cache-Control` / `Age` headers worked out from the entry's TTL.
 */

/** The HTTP settings of `@Cached({ http })` and of the module's `http` (their default). */
export interface CachedHttpOptions {
  /**
   * A strong `ETag` (a hash of the body, computed once when the entry is stored) on every
   * response the cache answers or stores; a GET or HEAD whose `If-None-Match` names it is
   * answered `304 Not Modified`, without the body and without calling the handler.
   * @default true
   */
  etag?: boolean;
  /**
   * `Cache-Control: public` or `private` with `max-age` (the entry's freshness lifetime in
   * seconds) and, on responses from the cache, `Age` (how long ago it was stored); `no-cache`
   * instead of `max-age` for an entry that never turns stale. A handler with `authorized: true`
   * always gets `private`. `false`: neither header.
   * @default false
   */
  cacheControl?: 'public' | 'private' | false;
}

/** {@link CachedHttpOptions} resolved for one handler. */
export interface HttpSettings {
  etag: boolean;
  cacheControl: 'public' | 'private' | false;
}

const HTTP_OPTIONS = optionNames<CachedHttpOptions>({ etag: true, cacheControl: true });

/**
 * An `http` option at `path`, checked (`undefined` when absent).
 * @throws InvalidOptionError naming the bad field (`@Cached().http.cacheControl: …`).
 */
export function checkHttpOptions(path: string, value: unknown): CachedHttpOptions | undefined {
  if (value === undefined) return undefined;
  const options = optionsObject<CachedHttpOptions>(path, value as CachedHttpOptions);
  onlyKnownKeys(path, options, HTTP_OPTIONS);
  boolean(at(path, 'etag'), options.etag, true);
  const scope: unknown = options.cacheControl;
  if (scope !== undefined && scope !== false && scope !== 'public' && scope !== 'private') {
    const shown = typeof scope === 'string' ? JSON.stringify(scope) : describeValue(scope);
    throw invalid(at(path, 'cacheControl'), `must be 'public', 'private' or false, got ${shown}`);
  }
  return options;
}

/**
 * A handler's settings: its own `http` over the module's; `private` in place of `public` when
 * the handler caches `authorized` requests (its responses are keyed on an identity).
 */
export function httpSettings(
  own: CachedHttpOptions | undefined,
  module: CachedHttpOptions | undefined,
  authorized: boolean,
): HttpSettings {
  const cacheControl = own?.cacheControl ?? module?.cacheControl ?? false;
  return {
    etag: own?.etag ?? module?.etag ?? true,
    cacheControl: authorized && cacheControl === 'public' ? 'private' : cacheControl,
  };
}

/**
 * What a `@Cached()` handler stores: its result with the status it answered with, the strong
 * `ETag` of the body (absent with `etag: false` or a body JSON cannot write) and when it was
 * computed (the store's clock). Plain data, so that every tier holds it. Results the cache never
 * wraps (`undefined`, `null`, streams) and entries written before it existed are the body alone.
 */
export interface HttpEntry {
  /** Marks the entry; the format version. */
  readonly $httpEntry: 1;
  readonly body: unknown;
  readonly status: number;
  readonly etag?: string;
  readonly storedAt: number;
}

/** Whether a cached value is an {@link HttpEntry}. */
export function isHttpEntry(value: unknown): value is HttpEntry {
  return typeof value === 'object' && value !== null && (value as HttpEntry).$httpEntry === 1;
}

/** The handler's result in a cached value: the entry's body, or the value itself. */
export function entryBody(value: unknown): unknown {
  return isHttpEntry(value) ? value.body : value;
}

/** The entry of a handler's `body` answered with `status` at `storedAt`. */
export function httpEntry(
  body: unknown,
  status: number,
  storedAt: number,
  etag: boolean,
): HttpEntry {
  const tag = etag ? etagOf(body) : undefined;
  return tag === undefined
    ? { $httpEntry: 1, body, status, storedAt }
    : { $httpEntry: 1, body, status, etag: tag, storedAt };
}

/**
 * A strong entity tag for `body` as it is sent: a string as it is, bytes as they are, anything
 * else as JSON (what both adapters send); the first 27 characters of its SHA-256 in base64url
 * (160 bits). `undefined` for a body JSON cannot write (a BigInt, a cycle, a function).
 */
export function etagOf(body: unknown): string | undefined {
  let bytes: string | Uint8Array | undefined;
  if (typeof body === 'string' || body instanceof Uint8Array) bytes = body;
  else {
    try {
      bytes = JSON.stringify(body);
    } catch {
      return undefined;
    }
  }
  if (bytes === undefined) return undefined;
  return `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
}

/**
 * Whether an `If-None-Match` field value names `etag` (RFC 9110 §13.1.2): `*`, or a list of
 * entity tags compared weakly (`W/"x"` matches `"x"`). A malformed member matches nothing.
 */
export function noneMatch(field: string, etag: string): boolean {
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag;
  let i = 0;
  while (i < field.length) {
    const c = field.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x2c) {
      i++; // whitespace and list commas
      continue;
    }
    if (c === 0x2a) return true; // `*`
    if (field.startsWith('W/', i)) i += 2;
    if (field.charCodeAt(i) === 0x22) {
      const end = field.indexOf('"', i + 1);
      if (end < 0) return false;
      if (end - i + 1 === opaque.length && field.startsWith(opaque, i)) return true;
      i = end + 1;
    } else {
      const comma = field.indexOf(',', i);
      if (comma < 0) return false;
      i = comma + 1;
    }
  }
  return false;
}

/** The parts of Express responses and Fastify replies, and of Nest's adapter, used here. */
export interface HttpResponse {
  statusCode: number;
  getHeader(name: string): unknown;
}
export interface HttpAdapterLike {
  status(response: unknown, statusCode: number): unknown;
  setHeader(response: unknown, name: string, value: string): unknown;
}

/** `Cache-Control: max-age` for an entry that never turns stale: none, revalidate each use. */
const NO_CACHE = 'no-cache';

/**
 * Answers `@Cached()` handlers' lookups over HTTP: the status kept with the entry, `ETag`,
 * `Cache-Control` / `Age`, and `304 Not Modified` for a GET or HEAD whose `If-None-Match`
 * names the entry. A plain hit without `If-None-Match` nor `cacheControl` hashes nothing and
 * sets one header (`ETag`).
 */
export class ConditionalGet {
  constructor(private readonly clock: Clock) {}

  /** The store's time: when an entry is stored, as the store counts its TTL. */
  now(): number {
    return this.clock.now();
  }

  /**
   * Applies `lookup` to the response and returns the body to send, or `undefined` with the
   * status set to 304 (sent without a body by both adapters).
   */
  respond(
    adapter: HttpAdapterLike,
    request: CacheableRequest,
    response: HttpResponse,
    lookup: CacheLookup<unknown>,
    settings: HttpSettings,
  ): unknown {
    const value = lookup.value;
    if (!lookup.stored) return entryBody(value); // computed for this call alone: as it is
    const entry = isHttpEntry(value) ? value : undefined;
    if (entry !== undefined && entry.status !== response.statusCode)
      adapter.status(response, entry.status);
    if (settings.cacheControl !== false && value !== undefined && value !== null)
      this.setCacheControl(adapter, response, lookup, entry, settings.cacheControl);
    const etag = settings.etag ? entry?.etag : undefined;
    if (entry === undefined || etag === undefined) return entryBody(value);
    adapter.setHeader(response, 'ETag', etag);
    const condition = request.headers['if-none-match'];
    if (typeof condition === 'string' && noneMatch(condition, etag)) {
      const method = request.method ?? 'GET';
      if (method === 'GET' || method === 'HEAD') {
        adapter.status(response, 304);
        return undefined;
      }
    }
    return entry.body;
  }

  /**
   * `Cache-Control: <scope>, max-age=<lifetime s>` and, for a value from the cache, `Age`
   * (whole seconds since it was stored): a cache downstream keeps it for `max-age - Age`, what
   * is left of the entry's freshness (RFC 9111 §4.2; a `max-age` of what is left with an `Age`
   * would count the age twice). An entry stored without its time gets what is left as `max-age`
   * and no `Age`. Left alone when the handler of a MISS set `Cache-Control` itself.
   */
  private setCacheControl(
    adapter: HttpAdapterLike,
    response: HttpResponse,
    lookup: CacheLookup<unknown>,
    entry: HttpEntry | undefined,
    scope: 'public' | 'private',
  ): void {
    const fromCache = lookup.status !== 'MISS';
    if (!fromCache && response.getHeader('cache-control') !== undefined) return;
    // Known for every stored value (read from the cache, or computed and stored).
    const staleAt = lookup.staleAt;
    if (staleAt === undefined) return;
    let maxAge: number | undefined; // seconds; `undefined`: never stale
    if (staleAt !== 0) {
      // The entry's lifetime when it tells when it was stored (with `Age`), else what is left.
      maxAge =
        entry !== undefined
          ? Math.round((staleAt - entry.storedAt) / 1000)
          : Math.floor((staleAt - this.clock.now()) / 1000);
    }
    const freshness = maxAge === undefined ? NO_CACHE : `max-age=${Math.max(0, maxAge)}`;
    adapter.setHeader(response, 'Cache-Control', `${scope}, ${freshness}`);
    if (entry !== undefined && fromCache) {
      const age = Math.floor((this.clock.now() - entry.storedAt) / 1000);
      adapter.setHeader(response, 'Age', String(Math.max(0, age)));
    }
  }
}
