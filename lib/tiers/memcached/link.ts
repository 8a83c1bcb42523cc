import type { Socket } from 'node:net';
import type { Client, Response, Server } from 'memjs';

/** Marker returned by a response handler that expects more responses to the same request. */
export const MORE: unique symbol = Symbol('more');
/** Reads one answer of `server` (`host:port`): the result, {@link MORE}, or it throws. */
export type Handler<T> = (response: Response, server: string) => T | typeof MORE;

/** A memjs response callback; memjs keeps a `quiet` one registered until an empty-bodied answer. */
type ResponseCallback = ((response: Response) => void) & { quiet?: boolean };

/** A request waiting for its answer. */
export class Pending<T = unknown> {
  constructor(
    readonly opaque: number,
    readonly handle: Handler<T>,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    /** Epoch ms at which it gives up. */
    readonly at: number,
  ) {}
}

/**
 * One memjs client (one socket's life) and the requests waiting on it, by opaque. memjs wants a
 * response and an error callback per opaque; every request of a link registers the same three
 * functions (answer, quiet answer, error), so a request costs one {@link Pending}, not a handful of
 * closures. memjs reports any socket error to every registered error callback: the first call
 * fails the whole link, the others find it failed.
 */
export class Link {
  readonly pending = new Map<number, Pending>();
  readonly server: Server;
  failed = false;
  /** The socket whose `close` is watched (memjs opens it lazily, inside `Server#write`). */
  watched: Socket | undefined;
  readonly onResponse: ResponseCallback;
  readonly onQuietResponse: ResponseCallback;
  readonly onError: (cause: unknown) => void;

  constructor(
    readonly client: Client,
    respond: (link: Link, response: Response) => void,
    broken: (link: Link, cause: unknown) => void,
  ) {
    this.server = client.servers[0];
    this.onResponse = (r) => respond(this, r);
    this.onQuietResponse = (r) => respond(this, r);
    this.onQuietResponse.quiet = true;
    this.onError = (cause) => broken(this, cause);
  }
}
