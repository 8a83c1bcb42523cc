/** What a transport tells the bus about its subscription. */
export interface TransportHandlers {
  /** One message published on the channel, as sent (by anyone, this process included). */
  message(payload: Buffer): void;
  /**
   * The subscription's state changed: `true` once messages are being received (again), `false`
   * when they may not be (connection lost, broker not answering). `reason` says why, for logs.
   */
  state(up: boolean, reason?: string): void;
}

/**
 * A broker the invalidation bus runs on: publish bytes on a channel, subscribe to one, report the
 * subscription's state, close. Give your own as `bus: { transport }` to use another broker than
 * Redis. The bus never assumes delivery: it numbers its messages and treats a gap, or a
 * subscription that went down, as "something may have been missed".
 */
export interface InvalidationTransport {
  /**
   * Sends `payload` on `channel`. Resolves once the broker took it, rejects when it could not (a
   * rejected publish is counted and its sequence number skipped; the bus never retries).
   * Should not wait long when the broker is unreachable: the bus bounds the publishes in flight.
   */
  publish(channel: string, payload: Buffer): Promise<void>;
  /**
   * Subscribes to `channel`: resolves once subscribed (`handlers.state(true)` may follow later
   * when the broker is unreachable at first), rejects only for a setup error. After that the
   * transport keeps the subscription itself (reconnects, resubscribes) and reports through
   * `handlers`.
   */
  subscribe(channel: string, handlers: TransportHandlers): Promise<void>;
  /** Ends the subscription and the connections; no handler is called afterwards. */
  close(): Promise<void>;
}
