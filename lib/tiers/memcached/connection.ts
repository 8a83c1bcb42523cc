import type { Socket } from 'node:net';
import { Client, Server, type Response } from 'memjs';
import {
  Opcode,
  Status,
  counterRequest,
  deleteRequest,
  getMultiRequest,
  getRequest,
  noopRequest,
  statusText,
  storeRequest,
} from './protocol';
import type { ServerAddress } from './servers';

/**
 * What went wrong talking to a server:
 * - `connection`: the socket could not be opened (refused, unreachable, connect timeout) or was
 *   closed or reset under a request: the server is probably gone;
 * - `timeout`: a connected server did not answer in time (hung, overloaded, or a huge value);
 * - `server`: the server answered with an error status.
 */
export type MemcachedErrorKind = 'connection' | 'timeout' | 'server';

/** An error talking to one memcached server. */
export class MemcachedError extends Error {
  override readonly name: string = 'MemcachedError';
  /** See {@link MemcachedErrorKind}. */
  readonly kind: MemcachedErrorKind;
  /** The binary protocol status the server answered with, for `server` errors. */
  readonly status: number | undefined;

  constructor(
    message: string,
    /** `host:port` of the server. */
    readonly server: string,
    /**
     * True for connection errors and timeouts (the request may be sent again, possibly to another
     * server); false when the server answered with an error status.
     */
    readonly retryable: boolean,
    options?: { cause?: unknown; kind?: MemcachedErrorKind; status?: number },
  ) {
    super(message, options);
    this.kind = retryable ? (options?.kind ?? 'connection') : 'server';
    this.status = options?.status;
  }
}

/** Options of a {@link MemcachedConnection}. */
export interface MemcachedConnectionOptions {
  /** Per-request timeout in ms, connecting included. */
  timeoutMs: number;
}

/** When a request gives up, and how. */
interface Deadline {
  at: number;
  expire: () => void;
}

/** Marker returned by a response handler that expects more responses to the same request. */
const MORE: unique symbol = Symbol('more');
type Handler<T> = (response: Response) => T | typeof MORE;

/** A memjs response callback; memjs keeps a `quiet` one registered until an empty-bodied answer. */
type ResponseCallback = ((response: Response) => void) & { quiet?: boolean };

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
  private client: Client | undefined;
  private inflight = 0;
  private drained: (() => void)[] = [];
  private closed = false;
  /** Requests waiting for an answer, oldest first, see {@link watch}. */
  private readonly deadlines = new Set<Deadline>();
  private sweeper: NodeJS.Timeout | undefined;
  /** The socket corked for the current tick, see {@link coalesce}. */
  private corked: Socket | undefined;
  /** Sockets whose `close` is watched (memjs creates them lazily, inside `Server#write`). */
  private readonly watched = new WeakSet<Socket>();

  constructor(
    readonly server: ServerAddress,
    private readonly options: MemcachedConnectionOptions,
  ) {}

  /** `host:port`. */
  get address(): string {
    return this.server.address;
  }

  /**
   * GET: the value, or `undefined` on a miss. Values (here and from {@link getMulti}) are views of
   * memjs's read buffer, not copies: memjs never writes into a buffer it has parsed, and the store
   * decodes them at once and keeps nothing of them (`Codec` and the memory tier copy what they keep).
   */
  get(key: string): Promise<Buffer | undefined> {
    return this.send(
      (opaque) => getRequest(key, opaque),
      false,
      (r) => {
        if (r.header.status === Status.Ok) return r.val;
        if (r.header.status === Status.KeyNotFound) return undefined;
        throw this.statusError('get', r.header.status);
      },
    );
  }

  /** GET with the item's CAS version (for {@link deleteIfUnchanged}). */
  getWithCas(key: string): Promise<{ value: Buffer; cas: Buffer } | undefined> {
    return this.send(
      (opaque) => getRequest(key, opaque),
      false,
      (r) => {
        if (r.header.status === Status.Ok)
          return { value: Buffer.from(r.val), cas: Buffer.from(r.header.cas) };
        if (r.header.status === Status.KeyNotFound) return undefined;
        throw this.statusError('get', r.header.status);
      },
    );
  }

  /** DELETE carrying a CAS version: true when deleted, false when changed or gone since. */
  deleteIfUnchanged(key: string, cas: Buffer): Promise<boolean> {
    return this.send(
      (opaque) => deleteRequest(key, opaque, cas),
      false,
      (r) => {
        if (r.header.status === Status.Ok) return true;
        if (r.header.status === Status.KeyExists || r.header.status === Status.KeyNotFound)
          return false;
        throw this.statusError('delete', r.header.status);
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
      (r) => {
        if (r.header.opcode === Opcode.Noop) {
          if (failure) throw failure;
          return hits;
        }
        if (r.header.status === Status.Ok) hits.set(r.key.toString('utf8'), r.val);
        else if (r.header.status !== Status.KeyNotFound) {
          failure ??= this.statusError('get', r.header.status);
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
      (r) => {
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
        throw this.statusError(opcode === Opcode.Add ? 'add' : 'set', r.header.status);
      },
    );
  }

  /** DELETE; a missing key is not an error. */
  delete(key: string): Promise<void> {
    return this.send(
      (opaque) => deleteRequest(key, opaque),
      false,
      (r) => {
        if (r.header.status === Status.Ok || r.header.status === Status.KeyNotFound) return;
        throw this.statusError('delete', r.header.status);
      },
    );
  }

  /** INCREMENT / DECREMENT creating the counter at `max(by, 0)`; resolves the new value. */
  increment(key: string, by: number, expiry: number): Promise<number> {
    return this.send(
      (opaque) => counterRequest(key, by, expiry, opaque),
      false,
      (r) => {
        if (r.header.status === Status.Ok && r.val.length === 8) {
          return Number(r.val.readBigUInt64BE(0));
        }
        throw this.statusError(by < 0 ? 'decrement' : 'increment', r.header.status);
      },
    );
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
    this.discard(this.client, new MemcachedError('connection closed', this.address, true));
  }

  private statusError(op: string, status: number): MemcachedError {
    return new MemcachedError(
      `memcached ${this.address}: ${op} failed: ${statusText(status)}`,
      this.address,
      false,
      { status },
    );
  }

  private current(): Client {
    if (!this.client) {
      const seconds = this.options.timeoutMs / 1000;
      const server = new Server(this.server.host, this.server.port, undefined, undefined, {
        timeout: seconds,
        conntimeout: seconds,
      });
      this.client = new Client([server], { retries: 0, logger: NO_LOGGER });
    }
    return this.client;
  }

  /** Drops `client` if it is the current one and fails its pending requests with `error`. */
  private discard(client: Client | undefined, error: Error): void {
    if (!client) return;
    if (this.client === client) this.client = undefined;
    // Destroys the socket and calls every pending error callback (ours ignore a second settle).
    client.servers[0].error(error);
  }

  /**
   * memjs leaves requests pending when the server closes the socket without an error (a crashed
   * or stopped memcached sends a FIN): they would wait for the timeout. Failing them at once with
   * a connection error lets the tier fail over and retry right away.
   */
  private watchClose(client: Client): void {
    // memjs keeps the socket in an undeclared field; it exists once `write` was called.
    const socket = (client.servers[0] as unknown as { _socket?: Socket })._socket;
    if (!socket || this.watched.has(socket)) return;
    this.watched.add(socket);
    socket.once('close', () => {
      this.discard(
        client,
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
   * Sends one request (or one quiet pipeline when `quiet`) under a fresh opaque and settles with
   * the first handler result that is not {@link MORE}, a handler exception, a connection error or
   * the timeout, whichever comes first.
   */
  /**
   * Coalesces the requests issued in one tick into one socket write: the first request of a tick
   * corks the socket and a `nextTick` uncorks it, so Node sends them with a single `writev`. Under
   * concurrency this divides the write system calls (the dominant cost of a memcached hit on
   * loopback) and the packets on the wire; a lone request pays one `nextTick`.
   */
  private coalesce(server: Server): void {
    const socket = (server as unknown as { _socket?: Socket; connected?: boolean })._socket;
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
   * has the same timeout, so insertion order is deadline order; a deadline fires at most a tenth
   * of the timeout late.
   */
  private watch(deadline: Deadline): void {
    this.deadlines.add(deadline);
    this.sweeper ??= setInterval(
      () => {
        const now = Date.now();
        for (const d of this.deadlines) {
          if (d.at > now) break;
          this.deadlines.delete(d);
          d.expire();
        }
        if (this.deadlines.size === 0) this.stopSweeper();
      },
      Math.max(5, Math.ceil(this.options.timeoutMs / 10)),
    );
  }

  private unwatch(deadline: Deadline): void {
    this.deadlines.delete(deadline);
    if (this.deadlines.size === 0) this.stopSweeper();
  }

  private stopSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

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
    const client = this.current();
    const server = client.servers[0];
    client.incrSeq();
    const opaque = client.seq;
    const request = build(opaque);
    this.inflight++;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        this.unwatch(deadline);
        if (--this.inflight === 0) for (const done of this.drained.splice(0)) done();
        return true;
      };
      const succeed = (value: T): void => {
        if (finish()) resolve(value);
      };
      const fail = (error: unknown): void => {
        if (finish()) reject(error);
      };
      const deadline: Deadline = {
        at: Date.now() + this.options.timeoutMs,
        expire: () => {
          // Not even connected: the server is unreachable rather than slow.
          const connecting = !server.connected;
          const error = new MemcachedError(
            `memcached ${this.address}: ${connecting ? 'could not connect' : 'no answer'} within ${this.options.timeoutMs} ms`,
            this.address,
            true,
            { kind: connecting ? 'connection' : 'timeout' },
          );
          fail(error);
          this.discard(client, error);
        },
      };
      this.watch(deadline);

      const onResponse: ResponseCallback = (response) => {
        let out: T | typeof MORE;
        try {
          out = handle(response);
        } catch (error) {
          fail(error);
          return;
        }
        if (out !== MORE) succeed(out);
      };
      onResponse.quiet = quiet;
      server.onResponse(opaque, onResponse);
      server.onError(opaque, (cause: unknown) => {
        // memjs's own response deadline (the same timeout) reads like ours.
        const timedOut = cause instanceof Error && MEMJS_RESPONSE_TIMEOUT.test(cause.message);
        const error =
          cause instanceof MemcachedError
            ? cause
            : new MemcachedError(
                `memcached ${this.address}: ${
                  timedOut
                    ? `no answer within ${this.options.timeoutMs} ms`
                    : cause instanceof Error
                      ? cause.message
                      : String(cause)
                }`,
                this.address,
                true,
                { cause, kind: timedOut ? 'timeout' : 'connection' },
              );
        fail(error);
        this.discard(client, error);
      });
      this.writes++;
      this.coalesce(server);
      server.write(request);
      this.watchClose(client);
    });
  }
}
