import type { Clock } from '../../clock';
import { MemcachedError, TieredCacheError, messageOf } from '../../errors';
import type { HostPort } from '../host-port';
import { MemcachedConnection } from './connection';
import { HashRing } from './ring';
import { parseServers } from './servers';
import { Warmup, type WarmupOptions } from './warmup';

/** The servers and their connections, swapped as one by {@link Topology.setServers}. */
interface Placement {
  connections: Map<string, MemcachedConnection>;
  /** The ring over every server configured or discovered, failed ones included. */
  full: HashRing;
  /**
   * The ring keys are placed on: `full`'s servers minus the failed ones, or {@link full} when none
   * failed or all did (with no live server left, the tier keeps trying all of them).
   */
  ring: HashRing;
}

/** What a {@link Topology} is built with. */
export interface TopologyOptions {
  /** The tier's name, for messages. */
  name: string;
  /** Where the server list sits, for messages, e.g. `tiers[1].servers`. */
  path: string;
  /** Per-request timeout of every connection, ms. */
  timeoutMs: number;
  /** How long a server that failed with a connection error stays off the ring, ms; `0`: never. */
  failoverMs: number;
  /** Time source of `failoverMs`. */
  clock: Clock;
  /** Called on every connection error or timeout (discovery then polls sooner). */
  onConnectionError: () => void;
  /**
   * The gutter pool: keys whose owner is out go there instead of to the next owner, and a server
   * is emptied (FLUSH) before it rejoins. Undefined: keys move to the next owner on the ring.
   */
  gutter?: Topology;
  /** TTL cap of every entry written through these servers, ms (the gutter's own `ttl`). */
  maxTtlMs?: number;
  /** Warm scale-out after server list changes (see {@link Warmup}); absent: off. */
  warmup?: Pick<WarmupOptions, 'warmupMs' | 'expiresAt' | 'ttl'>;
}

/**
 * The servers of a memcached tier: one {@link MemcachedConnection} per server, the ketama ring
 * over all of them and the live ring keys are placed on, failover and probing.
 *
 * Failover: a server whose request fails with a connection error (refused, reset, closed, connect
 * timeout) or times out (connected, no answer: a hung server; not an error status) leaves the
 * live ring for `failoverMs`, so retries, and every later request for its keys, go to the server
 * that now owns the key, or to the gutter pool when there is one. Once `failoverMs` has passed,
 * the next request triggers a NOOP probe in the background: the server rejoins the ring when it
 * answers within the timeout (emptied first, with a gutter), else stays out another `failoverMs`.
 *
 * Failure isolation: an error about one server while another server is live is marked `partial`
 * (the store then leaves the tier's circuit closed); once every server is out it is not.
 */
export class Topology {
  /**
   * Told of every server list change with the placement before it; takes over the connections
   * of removed servers while it reads them (else they are closed at once).
   */
  readonly warmup: Warmup;
  /** Undefined until the first server list (with discovery: until the first discovery). */
  private placement: Placement | undefined;
  /** Failed servers and when they may be probed (clock ms). */
  private readonly failed = new Map<string, number>();
  private probing: Promise<void> | undefined;
  private closed = false;

  /** @param servers the validated server list, or undefined to wait for {@link setServers}. */
  constructor(
    private readonly options: TopologyOptions,
    servers?: readonly HostPort[],
  ) {
    this.warmup = new Warmup({
      warmupMs: 0,
      ...options.warmup,
      clock: options.clock,
      isFailed: (address) => this.failed.has(address),
    });
    if (servers !== undefined) this.placement = this.build(servers, new Map());
  }

  /** Whether a server list is in place. */
  get ready(): boolean {
    return this.placement !== undefined;
  }

  /** The servers keys are placed on (`host:port`); empty before the first server list. */
  get servers(): readonly string[] {
    return this.placement?.ring.servers ?? [];
  }

  /** Servers taken off the ring after a connection error or timeout, until a probe finds them answering. */
  get failedServers(): readonly string[] {
    return [...this.failed.keys()];
  }

  /**
   * Socket writes made per server since it joined the ring (one per request or pipeline), gutter
   * servers included.
   */
  writesPerServer(): Record<string, number> {
    const out: Record<string, number> = this.options.gutter?.writesPerServer() ?? {};
    for (const [address, c] of this.placement?.connections ?? []) out[address] = c.writes;
    return out;
  }

  /**
   * Replaces the server list: servers already known keep their connection, new ones get one,
   * removed ones are closed once their requests in flight have settled (with a `warmup`, once it
   * ends).
   *
   * @throws InvalidOptionError on an invalid list (the current ring is then kept).
   */
  setServers(servers: unknown): void {
    if (this.closed) throw new TieredCacheError('E_CLOSED', `${this.options.name}: closed`);
    const previous = this.placement;
    const next = this.build(
      parseServers(servers, this.options.path),
      previous?.connections ?? new Map(),
    );
    // Failed servers still listed stay failed; removed ones are forgotten.
    for (const address of this.failed.keys()) {
      if (!next.connections.has(address)) this.failed.delete(address);
    }
    this.placement = this.withLiveRing(next);
    if (previous === undefined) return;
    const removed = [...previous.connections]
      .filter(([address]) => !next.connections.has(address))
      .map(([, connection]) => connection);
    if (this.warmup.begin(previous.ring, previous.connections, removed)) return;
    for (const connection of removed) void connection.close();
  }

  /**
   * The connection of the server owning `key` on the live ring; starts a background probe of
   * failed servers when one is due.
   *
   * @throws TieredCacheError `E_NOT_CONNECTED` before the first server list.
   */
  connectionFor(key: string): MemcachedConnection {
    if (this.failed.size > 0) this.maybeProbe();
    return this.route(key);
  }

  /** The connection `key` goes to now, probing nothing. */
  private route(key: string): MemcachedConnection {
    const { ring, full, connections } = this.current();
    if (this.failed.size === 0) return connections.get(ring.serverFor(key))!;
    // With a gutter, a key keeps its owner (the full ring) unless that owner is out while another
    // server is live (`ring` is not `full`): then it goes to the gutter.
    const gutter = this.options.gutter;
    if (gutter === undefined || ring === full) return connections.get(ring.serverFor(key))!;
    const owner = full.serverFor(key);
    return this.failed.has(owner) ? gutter.connectionFor(key) : connections.get(owner)!;
  }

  /**
   * The server (`host:port`) `key` goes to: its owner on the live ring, or a gutter server.
   *
   * @throws TieredCacheError `E_NOT_CONNECTED` before the first server list.
   */
  serverFor(key: string): string {
    return this.route(key).address;
  }

  /**
   * Pings every server (NOOP); a server that cannot be reached leaves the ring. Resolves when at
   * least one answers.
   *
   * @throws TieredCacheError `E_UNREACHABLE` naming every server and its failure when none answers.
   */
  async reach(): Promise<void> {
    const connections = [...this.current().connections.values()];
    const results = await Promise.allSettled(connections.map((c) => c.ping()));
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.noteFailure(connections[i], r.reason);
    });
    if (results.some((r) => r.status === 'fulfilled')) return;
    const reasons = results.map((r, i) => {
      const reason = r.status === 'rejected' ? messageOf(r.reason) : 'ok';
      return `${connections[i].address} (${reason})`;
    });
    throw new TieredCacheError(
      'E_UNREACHABLE',
      `${this.options.name}: no memcached server is reachable: ${reasons.join(', ')}`,
    );
  }

  /**
   * After a connection error or a timeout of `connection` (not an error status): takes its server
   * off the ring and reports it (see `onConnectionError`); a gutter server's failure goes to the
   * gutter pool's own failover. Then marks the error `partial` while another server of this tier
   * is live (only that server failed), and not partial once none is (the tier as a whole failed).
   */
  noteFailure(connection: MemcachedConnection, error: unknown): void {
    if (!(error instanceof MemcachedError) || error.kind === 'server' || this.closed) return;
    const placement = this.placement;
    if (placement === undefined) return;
    const address = connection.address;
    if (placement.connections.get(address) !== connection) {
      // A gutter server (its keys' owners are out, others live), or a server already removed.
      const gutter = this.options.gutter;
      if (gutter?.owns(connection)) {
        gutter.noteFailure(connection, error);
        error.partial = true;
      }
      return;
    }
    this.options.onConnectionError();
    if (this.options.failoverMs > 0 && !this.failed.has(address)) {
      this.failed.set(address, this.options.clock.now() + this.options.failoverMs);
      this.placement = this.withLiveRing(placement);
    }
    error.partial = placement.full.servers.some((s) => s !== address && !this.failed.has(s));
  }

  /** Whether `connection` is the current connection of one of these servers. */
  owns(connection: MemcachedConnection): boolean {
    return this.placement?.connections.get(connection.address) === connection;
  }

  /**
   * Probes now (NOOP) the failed servers whose failover time has passed, as the next request
   * would in the background, and resolves when done: those that answer are back on the ring, the
   * others stay off for another failover time. Joins a probe already running.
   */
  async probeFailedServers(): Promise<void> {
    this.maybeProbe();
    await this.probing;
  }

  /**
   * Refuses further work, waits for a probe in flight, then closes every connection (those held
   * by the warmup too).
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.probing;
    await Promise.all([
      this.warmup.end(),
      ...[...(this.placement?.connections.values() ?? [])].map((c) => c.close()),
      this.options.gutter?.close(),
    ]);
  }

  private current(): Placement {
    if (this.placement === undefined) {
      throw new TieredCacheError(
        'E_NOT_CONNECTED',
        `${this.options.name}: no servers yet: connect() runs the first discovery`,
      );
    }
    return this.placement;
  }

  /** `placement` with its live ring rebuilt from {@link failed}. */
  private withLiveRing(placement: Placement): Placement {
    const all = placement.full.servers;
    const live = all.filter((address) => !this.failed.has(address));
    const ring =
      live.length === all.length || live.length === 0 ? placement.full : new HashRing(live);
    return { ...placement, ring };
  }

  /** Starts a background probe of the failed servers whose failover time has passed. */
  private maybeProbe(): void {
    if (this.failed.size === 0 || this.probing !== undefined || this.closed) return;
    const now = this.options.clock.now();
    let due = false;
    for (const at of this.failed.values()) if (at <= now) due = true;
    if (!due) return;
    this.probing = this.probe(now).finally(() => (this.probing = undefined));
  }

  private async probe(now: number): Promise<void> {
    const due = [...this.failed].filter(([, at]) => at <= now).map(([address]) => address);
    await Promise.all(
      due.map(async (address) => {
        const connection = this.placement?.connections.get(address);
        if (connection === undefined) return void this.failed.delete(address);
        try {
          await connection.ping();
          // With a gutter, the writes made while it was out went there: empty it, so that it
          // never serves a value older than those writes.
          if (this.options.gutter !== undefined) await connection.flush();
          if (this.placement?.connections.get(address) === connection) this.failed.delete(address);
        } catch {
          if (this.failed.has(address)) {
            this.failed.set(address, this.options.clock.now() + this.options.failoverMs);
          }
        }
      }),
    );
    if (this.placement !== undefined && !this.closed) {
      this.placement = this.withLiveRing(this.placement);
    }
  }

  private build(servers: readonly HostPort[], reuse: Map<string, MemcachedConnection>): Placement {
    const connections = new Map<string, MemcachedConnection>();
    for (const server of servers) {
      connections.set(
        server.address,
        reuse.get(server.address) ??
          new MemcachedConnection(server, {
            timeoutMs: this.options.timeoutMs,
            maxTtlMs: this.options.maxTtlMs,
          }),
      );
    }
    const full = new HashRing(servers.map((s) => s.address));
    return { connections, full, ring: full };
  }
}
