import { randomUUID } from 'node:crypto';
import { waitAtMost } from '../clock';
import {
  decodeMessage,
  encodeMessage,
  senderPrefix,
  type InvalidationMessage,
  type TagInvalidation,
} from './invalidation-message';
import type { InvalidationTransport } from './invalidation-transport';

/** Keys per message; more in one tick go out as several messages. */
const MAX_KEYS_PER_MESSAGE = 1000;
/**
 * Publishes start about this far apart, ms (at least half of it): a writer faster than that has
 * its keys gathered into one message per interval (a PUBLISH costs about as much CPU as a
 * memcached write: one per write made sequential writes 0.5-0.6x as fast); one after a quiet
 * spell goes out at once.
 */
const MIN_INTERVAL_MS = 1;
/** How long `close()` waits for the publishes in flight, ms. */
const CLOSE_WAIT_MS = 2000;
/**
 * Clock skew allowed between hosts, ms: a first message of a sender made less than this after a
 * receiver came up, at a number past 1, is not taken for a gap (the sender may have started
 * before, its first messages sent before the receiver listened).
 */
const SKEW_MS = 1000;
/** Senders whose last sequence number a receiver remembers (the oldest heard of are forgotten). */
const MAX_SENDERS = 10_000;

/** What the bus tells the store. */
export interface BusHandlers {
  /** Another instance invalidated these keys (and, with `generation`, cleared the namespace). */
  invalidate(message: InvalidationMessage): void;
  /** An invalidation may have been missed (`reason` says how): drop everything local. */
  flush(reason: string): void;
  /** The bus went down (`up` false: invalidations may be missed from now on) or came back. */
  state(up: boolean, reason: string): void;
}

export interface BusSetup {
  /**
   * The transport, built on first use (by `start()` or the first publish): keys changed before
   * it is ready wait for it like any others.
   */
  transport: () => Promise<InvalidationTransport>;
  /** The channel: one per namespace. */
  channel: string;
  /** Keys waiting to be published at most; past it, they are dropped (and counted). */
  maxQueue: number;
  handlers: BusHandlers;
}

/** What the bus did, for stats and metrics. */
export interface BusStats {
  /** Whether the subscription is up (invalidations are being received). */
  up: boolean;
  /** Messages the broker took, and that it refused or did not answer. */
  published: number;
  publishFailed: number;
  /** Keys dropped because more than `maxQueue` were waiting (receivers see a gap). */
  dropped: number;
  /** Keys waiting for the publish in flight to finish. */
  pending: number;
  /** Messages received from other instances; sequence gaps seen; messages not understood. */
  received: number;
  gaps: number;
  invalid: number;
  /** Publishes in flight now (at most one, but when closing). */
  inFlight: number;
}

/**
 * The invalidation bus of one store: publishes the keys this instance writes or deletes,
 * receives other instances' and hands them to the store, and never loses one silently.
 *
 * - Publishing never blocks a caller: keys are gathered and sent after the tick, one publish at a
 *   time; the keys that come while one is in flight go out together in the next. A sequential
 *   writer thus costs one publish per broker round trip, not one per write, and a stalled broker
 *   makes the queue of keys grow, not the number of messages: past `maxQueue` keys waiting, they
 *   are dropped and counted.
 * - Every message carries its sender's sequence number; a publish that fails, or keys dropped,
 *   spend a number, so receivers see the gap. A receiver that sees a gap, or whose subscription
 *   goes down or comes back, is told to flush.
 */
export class InvalidationBus {
  /** This instance's id on the channel. */
  readonly id = randomUUID();
  /** When this bus was made (epoch ms): its messages carry it. */
  private readonly born = wallClock();
  /** When the subscription last came up (epoch ms); Infinity while down. */
  private upSince = Infinity;
  private readonly ownPrefix = senderPrefix(this.id);
  /** When the last publish started (`performance.now()`). */
  private lastSent = -Infinity;
  private seq = 0;
  private readonly pendingKeys = new Set<string>();
  private pendingGeneration: number | undefined;
  /** Tag invalidations waiting, by mode and tag: the latest time of each. */
  private readonly pendingTags = new Map<string, TagInvalidation>();
  private scheduled = false;
  private up = false;
  private closed = false;
  private readonly senders = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly counts = {
    published: 0,
    publishFailed: 0,
    dropped: 0,
    received: 0,
    gaps: 0,
    invalid: 0,
  };

  private transportReady: Promise<InvalidationTransport> | undefined;

  constructor(private readonly setup: BusSetup) {}

  private transport(): Promise<InvalidationTransport> {
    return (this.transportReady ??= this.setup.transport());
  }

  /** Subscribes; the bus counts as up once the transport says so. */
  async start(): Promise<void> {
    const transport = await this.transport();
    if (this.closed) return;
    await transport.subscribe(this.setup.channel, {
      message: (payload) => this.receive(payload),
      state: (up, reason) => this.changeState(up, reason ?? (up ? 'subscribed' : 'disconnected')),
    });
  }

  get isUp(): boolean {
    return this.up;
  }

  stats(): BusStats {
    return {
      up: this.up,
      ...this.counts,
      pending: this.pendingKeys.size,
      inFlight: this.inFlight.size,
    };
  }

  /** Announces that `keys` changed here (sent after this tick, with the tick's others). */
  keysChanged(keys: readonly string[]): void {
    if (this.closed) return;
    for (const key of keys) this.pendingKeys.add(key);
    if (this.pendingKeys.size > this.setup.maxQueue) {
      // Receivers will see the number these keys would have had go missing, and flush.
      this.counts.dropped += this.pendingKeys.size;
      this.pendingKeys.clear();
      this.seq++;
    }
    this.schedule();
  }

  /** Announces that this instance cleared the namespace: it is now at `generation`. */
  cleared(generation: number): void {
    if (this.closed) return;
    this.pendingGeneration = Math.max(generation, this.pendingGeneration ?? generation);
    this.schedule();
  }

  /** Announces invalidated tags. */
  tagsInvalidated(tags: readonly TagInvalidation[]): void {
    if (this.closed) return;
    for (const t of tags) {
      const id = `${t.mode}:${t.tag}`;
      const seen = this.pendingTags.get(id);
      if (seen === undefined || seen.at < t.at) this.pendingTags.set(id, t);
    }
    this.schedule();
  }

  /**
   * Sends what is pending, waits (up to 2 s) for the publishes in flight, then closes the
   * transport: the last writes of an instance that shuts down still reach the others.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.send(true);
    this.closed = true;
    this.up = false;
    if (this.inFlight.size > 0) await waitAtMost(Promise.allSettled(this.inFlight), CLOSE_WAIT_MS);
    const transport = await this.transportReady?.catch(() => undefined);
    await transport?.close();
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight.size > 0) return; // the publish in flight sends them
    this.scheduled = true;
    // Timers have a 1 ms resolution: a wait of less than half that is not worth one.
    const wait = this.lastSent + MIN_INTERVAL_MS - performance.now();
    if (wait < MIN_INTERVAL_MS / 2) setImmediate(() => this.send());
    else setTimeout(() => this.send(), wait).unref();
  }

  /**
   * Publishes what is pending, in messages of at most {@link MAX_KEYS_PER_MESSAGE} keys, unless a
   * publish is in flight (its end sends them) or `all` (closing).
   */
  private send(all = false): void {
    this.scheduled = false;
    if (this.closed || (this.inFlight.size > 0 && !all) || !this.hasPending()) return;
    const keys = [...this.pendingKeys];
    const generation = this.pendingGeneration;
    const tags = [...this.pendingTags.values()];
    this.pendingKeys.clear();
    this.pendingTags.clear();
    this.pendingGeneration = undefined;
    const at = wallClock();
    for (let i = 0; i === 0 || i < keys.length; i += MAX_KEYS_PER_MESSAGE) {
      const first = i === 0;
      this.publish({
        from: this.id,
        seq: ++this.seq,
        at,
        born: this.born,
        keys: keys.slice(i, i + MAX_KEYS_PER_MESSAGE),
        generation: first ? generation : undefined,
        tags: first ? tags : undefined,
      });
    }
  }

  private publish(message: InvalidationMessage): void {
    const { counts } = this;
    this.lastSent = performance.now();
    let sent: Promise<void>;
    try {
      const payload = encodeMessage(message);
      sent = this.transport().then((t) => t.publish(this.setup.channel, payload));
    } catch (err) {
      sent = Promise.reject(err);
    }
    // A failed publish is not retried: its number is spent, receivers see the gap.
    const settled = sent.then(
      () => void counts.published++,
      () => void counts.publishFailed++,
    );
    this.inFlight.add(settled);
    void settled.finally(() => {
      this.inFlight.delete(settled);
      if (this.hasPending()) this.schedule();
    });
  }

  private hasPending(): boolean {
    return (
      this.pendingKeys.size > 0 || this.pendingGeneration !== undefined || this.pendingTags.size > 0
    );
  }

  private receive(payload: Buffer): void {
    if (this.closed || isPrefix(this.ownPrefix, payload)) return;
    const message = decodeMessage(payload);
    if (typeof message === 'string') {
      this.counts.invalid++;
      return;
    }
    this.counts.received++;
    const last = this.senders.get(message.from);
    // Most recently heard of last: the first entry is the one to forget when there are too many.
    this.senders.delete(message.from);
    this.senders.set(message.from, Math.max(message.seq, last ?? 0));
    if (this.senders.size > MAX_SENDERS) this.senders.delete(this.senders.keys().next().value!);
    // A sender heard of for the first time, made while this bus was listening, whose numbering
    // does not start at 1: its first messages were lost (a publish failed as it started).
    const firstMissed = last === undefined && message.born > this.upSince + SKEW_MS;
    if ((last !== undefined && message.seq > last + 1) || (firstMissed && message.seq > 1)) {
      this.counts.gaps++;
      const missed = message.seq - (last ?? 0) - 1;
      this.setup.handlers.flush(
        `missed ${missed} invalidation message${missed === 1 ? '' : 's'} from instance ${message.from}`,
      );
    }
    this.setup.handlers.invalidate(message);
  }

  private changeState(up: boolean, reason: string): void {
    if (this.closed || up === this.up) return;
    this.up = up;
    this.upSince = up ? wallClock() : Infinity;
    // Senders' numbers are kept: a publish that fails after this subscription is back, before
    // the sender's first one that lands, must still show as a gap (ids never repeat, so a kept
    // number costs at most one extra flush).
    this.setup.handlers.state(up, reason);
  }
}

function isPrefix(prefix: Buffer, payload: Buffer): boolean {
  return (
    payload.length > prefix.length &&
    payload.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
  );
}

/** Epoch ms, sub-millisecond (a delivery on loopback takes a fraction of one). */
function wallClock(): number {
  return performance.timeOrigin + performance.now();
}
