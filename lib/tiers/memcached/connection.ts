import type { Socket } from 'node:net';
import { Client, Server, type Response } from 'memjs';
import { MemcachedError, messageOf } from '../../errors';
import type { HostPort } from '../host-port';
import { Link, MORE, Pending, type Handler } from './link';
import {
  Opcode,
  Status,
  counterRequest,
  deleteRequest,
  flushRequest,
  getMultiRequest,
  getRequest,
  noopRequest,
  statusText,
  storeRequest,
  toMemcachedExpiry,
} from './protocol';

/** Options of a {@link MemcachedConnection}. */
export interface MemcachedConnectionOptions {
  /** Per-request timeout in ms, connecting included. */
  timeoutMs: number;
  /**
   * Longest TTL an entry written through this connection gets, ms (a gutter server's short TTL);
   * undefined: the TTL asked for.
   */
  maxTtlMs?: number;
}

const NO_LOGGER = { log: (): void => undefined };

/** memjs's own request deadline error (it races ours, which is set at the same time). */
const MEMJS_RESPONSE_TIMEOUT = /timed out waiting on response/;

/**
 * One memcached server, spoken to through a memjs `Client` that holds this server only
 * (`retries: 0`, silent logger): memjs owns the socket, the response parsing and the opaque
 * (`seq`) bookkeeping; this class builds the requests (see `protocol.ts`), reads statuses, adds a
 * hard per-request deadline and sends quiet-get pipelines through memjs's `Server`.
 *
 * Why a memjs `Server` is driven directly rather than through `Client#perform`: a pipeline needs
 * one response callback that stays registered across many answers (memjs's `quiet` callbacks,
 * released by the first empty-bodied answer, here the closing NOOP) and a single socket write.
 *
 * After any connection error or timeout the memjs client is dropped and a fresh one is created
 * for the next request. memjs's own reconnection can orphan a new socket when the old socket's
 * `close` event fires after the reconnect (its `close` handler clears `_socket`), which would leave
 * requests waiting for a timeout; a fresh `Server` per connection sidesteps that.
 */
export class MemcachedConnection {
  /** Socket writes made (one per request or pipeline); exposed for tests and stats. */
  writes = 0;
  private link: Link | undefined;
  private inflight = 0;
  private drained: (() => void)[] = [];
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;
  /** The socket corked for the current tick, see {@link coalesce}. */
  private corked: Socket | undefined;

  constructor(
    readonly server: HostPort,
    private readonly options: MemcachedConnectionOptions,
  ) {}

  /** `host:port`. */
  get address(): string {
    return this.server.address;
  }

  /**
   * memcached's expiry field for an entry written here for `ttlMs` (see `toMemcachedExpiry`),
   * capped at `maxTtlMs` on a gutter server.
   *
   * @throws RangeError when `ttlMs` is negative or not a finite number.
   */
  expiry(ttlMs: number): number {
    const cap = this.options.maxTtlMs;
    return toMemcachedExpiry(cap === undefined || (ttlMs > 0 && ttlMs <= cap) ? ttlMs : cap);
  }

  /**
   * GET: the value, or `undefined` on a miss. Values (here and from {@link getMulti}) are views of
   * memjs's read buffer, not copies: memjs never writes into a buffer it has parsed, and the store
   * decodes them at once and keeps nothing of them (`Codec` and the memory tier copy what they keep).
   */
  get(key: string): Promise<Buffer | undefined> {
    return this.send((opaque) => getRequest(key, opaque), false, readValue);
  }

  /** GET with the item's CAS version (for {@link deleteIfUnchanged} and {@link setIfUnchanged}). */
  getWithCas(key: string): Promise<{ value: Buffer; cas: Buffer } | undefined> {
    return this.send(
      (opaque) => getRequest(key, opaque),
      false,
      (r, server) => {
        if (r.header.status === Status.Ok)
          return { value: Buffer.from(r.val), cas: Buffer.from(r.header.cas) };
        if (r.header.status === Status.KeyNotFound) return undefined;
        throw statusError(server, 'get', r.header.status);
      },
    );
  }

  /** DELETE carrying a CAS version: true when deleted, false when changed or gone since. */
  deleteIfUnchanged(key: string, cas: Buffer): Promise<boolean> {
    return this.send(
      (opaque) => deleteRequest(key, opaque, cas),
      false,
      (r, server) => {
        if (r.header.status === Status.Ok) return true;
        if (r.header.status === Status.KeyExists || r.header.status === Status.KeyNotFound)
          return false;
        throw statusError(server, 'delete', r.header.status);
      },
    );
  }

  /**
   * SET carrying a CAS version: true when stored, false when the item changed or went away since
   * (memcached answers "key exists" or "key not found" and stores nothing).
   */
  setIfUnchanged(key: string, value: Buffer, expiry: number, cas: Buffer): Promise<boolean> {
    return this.send(
      (opaque) => storeRequest(Opcode.Set, key, value, expiry, opaque, cas),
      false,
      (r, server) => {
        if (r.header.status === Status.Ok) return true;
        if (r.header.status === Status.KeyExists || r.header.status === Status.KeyNotFound)
          return false;
        throw statusError(server, 'set', r.header.status);
      },
    );
  }

  /**
   * Gets many keys in one write and one round trip: GETKQ for each key, then a NOOP. Hits are
   * answered with their key; the NOOP's answer ends the batch. Returns the hits by key.
   */
  getMulti(keys: readonly string[]): Promise<Map<string, Buffer>> {
    const hits = new Map<string, Buffer>();
    let failure: MemcachedError | undefined;
    return this.send(
      (opaque) => getMultiRequest(keys, opaque),
      true,
      (r, server) => {
        if (r.header.opcode === Opcode.Noop) {
          if (failure) throw failure;
          return hits;
        }
        if (r.header.status === Status.Ok) hits.set(r.key.toString('utf8'), r.val);
        else if (r.header.status !== Status.KeyNotFound) {
          failure ??= statusError(server, 'get', r.header.status);
        }
        return MORE;
      },
    );
  }

  /**
   * SET or ADD. Resolves `'stored'`, `'exists'` (ADD of a present key) or `'too-large'` (the
   * server's item size limit; memcached then also drops any older value of a SET).
   */
  store(
    opcode: typeof Opcode.Set | typeof Opcode.Add,
    key: string,
    value: Buffer,
    expiry: number,
  ): Promise<'stored' | 'exists' | 'too-large'> {
    return this.send(
      (opaque) => storeRequest(opcode, key, value, expiry, opaque),
      false,
      (r, server) => {
        switch (r.header.status) {
          case Status.Ok:
            return 'stored';
          case Status.KeyExists:
          case Status.NotStored:
            if (opcode === Opcode.Add) return 'exists';
            break;
          case Status.ValueTooLarge:
            return 'too-large';
        }
        throw statusError(server, opcode === Opcode.Add ? 'add' : 'set', r.header.status);
      },
    );
  }

  /** DELETE: true when the server held the key, false when it did not (not an error). */
  delete(key: string): Promise<boolean> {
    return this.send(
      (opaque) => deleteRequest(key, opaque),
      false,
      (r, server) => {
        if (r.header.status === Status.Ok) return true;
        if (r.header.status === Status.KeyNotFound) return false;
        throw statusError(server, 'delete', r.header.status);
      },
    );
  }

  /** INCREMENT / DECREMENT creating the counter at `max(by, 0)`; resolves the new value. */
  increment(key: string, by: number, expiry: number): Promise<number> {
    return this.send(
      (opaque) => counterRequest(key, by, expiry, opaque),
      false,
      (r, server) => {
        if (r.header.status === Status.Ok && r.val.length === 8) {
          return Number(r.val.readBigUInt64BE(0));
        }
        throw statusError(server, by < 0 ? 'decrement' : 'increment', r.header.status);
      },
    );
  }

  /** FLUSH: empties the server (every item of every client); resolves when it answered. */
  flush(): Promise<void> {
    return this.send(flushRequest, false, (r, server) => {
      if (r.header.status === Status.Ok) return undefined;
      throw statusError(server, 'flush', r.header.status);
    });
  }

  /** NOOP round trip: resolves when the server answers. */
  ping(): Promise<void> {
    return this.send(noopRequest, false, () => undefined);
  }

  /**
   * Refuses new requests, waits for the ones in flight (each bounded by the timeout), then closes
   * the socket.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    this.discard(this.link, new MemcachedError('connection closed', this.address, true));
  }

  private current(): Link {
    if (!this.link) {
      const seconds = this.options.timeoutMs / 1000;
      const server = new Server(this.server.host, this.server.port, undefined, undefined, {
        timeout: seconds,
        conntimeout: seconds,
      });
      this.link = new Link(
        new Client([server], { retries: 0, logger: NO_LOGGER }),
        (link, response) => this.respond(link, response),
        (link, cause) => this.broken(link, cause),
      );
    }
    return this.link;
  }

  /**
   * Fails every request waiting on `link` with `error`, drops the link if it is the current one
   * and closes its socket (memjs then reports `error` to the link's error callback, which finds
   * the link failed already).
   */
  private discard(link: Link | undefined, error: Error): void {
    if (!link || link.failed) return;
    link.failed = true;
    if (this.link === link) this.link = undefined;
    for (const p of link.pending.values()) {
      this.settle(link, p);
      p.reject(error);
    }
    link.server.error(error);
  }

  /** memjs's answer to a request of `link`: settles it unless the handler wants more. */
  private respond(link: Link, response: Response): void {
    const p = link.pending.get(response.header.opaque);
    if (p === undefined) return; // a quiet pipeline's tail after its handler failed
    let out: unknown;
    try {
      out = p.handle(response, this.address);
    } catch (error) {
      this.settle(link, p);
      p.reject(error);
      return;
    }
    if (out === MORE) return;
    this.settle(link, p);
    p.resolve(out);
  }

  /** memjs's report of a socket error, a closed socket or its own response deadline. */
  private broken(link: Link, cause: unknown): void {
    if (link.failed) return;
    // memjs's own response deadline (the same timeout) reads like ours.
    const timedOut = cause instanceof Error && MEMJS_RESPONSE_TIMEOUT.test(cause.message);
    this.discard(
      link,
      cause instanceof MemcachedError
        ? cause
        : new MemcachedError(
            `memcached ${this.address}: ${
              timedOut ? `no answer within ${this.options.timeoutMs} ms` : messageOf(cause)
            }`,
            this.address,
            true,
            { cause, kind: timedOut ? 'timeout' : 'connection' },
          ),
    );
  }

  private settle(link: Link, p: Pending): void {
    link.pending.delete(p.opaque);
    if (--this.inflight > 0) return;
    this.stopSweeper();
    for (const done of this.drained.splice(0)) done();
  }

  /**
   * memjs leaves requests pending when the server closes the socket without an error (a crashed
   * or stopped memcached sends a FIN): they would wait for the timeout. Failing them at once with
   * a connection error lets the tier fail over and retry right away.
   */
  private watchClose(link: Link): void {
    // memjs keeps the socket in an undeclared field; it exists once `write` was called.
    const socket = (link.server as unknown as { _socket?: Socket })._socket;
    if (!socket || link.watched === socket) return;
    link.watched = socket;
    socket.once('close', () => {
      this.discard(
        link,
        new MemcachedError(
          `memcached ${this.address}: connection closed by the server`,
          this.address,
          true,
          { kind: 'connection' },
        ),
      );
    });
  }

  /**
   * Coalesces the requests issued in one tick into one socket write: the first request of a tick
   * corks the socket and a `nextTick` uncorks it, so Node sends them with a single `writev`. Under
   * concurrency this divides the write system calls (the dominant cost of a memcached hit on
   * loopback) and the packets on the wire; a lone request pays one `nextTick`.
   */
  private coalesce(server: Server): void {
    const socket = (server as unknown as { _socket?: Socket })._socket;
    if (socket === undefined || this.corked === socket) return;
    this.corked = socket;
    socket.cork();
    process.nextTick(() => {
      this.corked = undefined;
      socket.uncork();
    });
  }

  /**
   * Request deadlines share one sweeping timer per connection instead of a timer per request
   * (a timer's creation and cancellation cost about a tenth of a memcached hit). Every request
   * has the same timeout, so the link's requests, in insertion order, are in deadline order; a
   * deadline fires at most a tenth of the timeout late. The first one due fails its whole link:
   * a server that leaves one request unanswered is not trusted with the others.
   */
  private startSweeper(): void {
    this.sweeper ??= setInterval(
      () => {
        const link = this.link;
        const first = link?.pending.values().next().value;
        if (link === undefined || first === undefined || first.at > Date.now()) return;
        // Not even connected: the server is unreachable rather than slow.
        const connecting = !link.server.connected;
        this.discard(
          link,
          new MemcachedError(
            `memcached ${this.address}: ${connecting ? 'could not connect' : 'no answer'} within ${this.options.timeoutMs} ms`,
            this.address,
            true,
            { kind: connecting ? 'connection' : 'timeout' },
          ),
        );
      },
      Math.max(5, Math.ceil(this.options.timeoutMs / 10)),
    );
  }

  private stopSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /**
   * Sends one request (or one quiet pipeline when `quiet`) under a fresh opaque and settles with
   * the first handler result that is not {@link MORE}, a handler exception, a connection error or
   * the timeout, whichever comes first.
   */
  private send<T>(
    build: (opaque: number) => Buffer,
    quiet: boolean,
    handle: Handler<T>,
  ): Promise<T> {
    if (this.closed) {
      return Promise.reject(
        new MemcachedError(`memcached ${this.address}: connection closed`, this.address, true),
      );
    }
    const link = this.current();
    const { client, server } = link;
    client.incrSeq();
    const opaque = client.seq;
    const request = build(opaque);
    return new Promise<T>((resolve, reject) => {
      const at = Date.now() + this.options.timeoutMs;
      link.pending.set(opaque, new Pending<T>(opaque, handle, resolve, reject, at) as Pending);
      if (this.inflight++ === 0) this.startSweeper();
      server.onResponse(opaque, quiet ? link.onQuietResponse : link.onResponse);
      server.onError(opaque, link.onError);
      this.writes++;
      this.coalesce(server);
      server.write(request);
      this.watchClose(link);
    });
  }
}

/**
 * Whether `error` is a connection error or a timeout of a request, which the tier sends again
 * (to the key's owner at that time), rather than an error status.
 */
export function isRetryable(error: unknown): boolean {
  return error instanceof MemcachedError && error.retryable;
}

/** A GET's answer: the value, undefined on a miss. */
function readValue(r: Response, server: string): Buffer | undefined {
  if (r.header.status === Status.Ok) return r.val;
  if (r.header.status === Status.KeyNotFound) return undefined;
  throw statusError(server, 'get', r.header.status);
}

function statusError(server: string, op: string, status: number): MemcachedError {
  return new MemcachedError(
    `memcached ${server}: ${op} failed: ${statusText(status)}`,
    server,
    false,
    { status },
  );
}
