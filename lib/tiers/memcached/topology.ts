import type { Clock } from '../../clock';
import { MemcachedError, TieredCacheError, messageOf } from '../../errors';
import type { HostPort } from '../host-port';
import { MemcachedConnection } from './connection';
import { HashRing } from './ring';
import { parseServers } from './servers';

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
  /** Called on every connection error (discovery then polls sooner). */
  onConnectionError: () => void;
}

/**
 * The servers of a memcached tier: one {@link MemcachedConnection} per server, the ketama ring
 * over all of them and the live ring keys are placed on, failover and probing.
 *
 * Failover: a server whose request fails with a connection error (refused, reset, closed, connect
 * timeout; not a timeout of a connected server, not an error status) leaves the live ring for
 * `failoverMs`, so retries, and every later request for its keys, go to the server that now owns
 * the key. Once `failoverMs` has passed, the next request triggers a NOOP probe in the
 * background: the server rejoins the ring when it answers, else stays out another `failoverMs`.
 */
export class Topology {
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

  /** Servers taken off the ring after a connection error, until a probe finds them answering. */
  get failedServers(): readonly string[] {
    return [...this.failed.keys()];
  }

  /** Socket writes made per server since it joined the ring (one per request or pipeline). */
  writesPerServer(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [address, c] of this.placement?.connections ?? []) out[address] = c.writes;
    return out;
  }

  /**
   * Replaces the server list: servers already known keep their connection, new ones get one,
   * removed ones are closed once their requests in flight have settled.
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
    for (const [address, connection] of previous?.connections ?? []) {
      if (!next.connections.has(address)) void connection.close();
    }
  }

  /**
   * The connection of the server owning `key` on the live ring; starts a background probe of
   * failed servers when one is due.
   *
   * @throws TieredCacheError `E_NOT_CONNECTED` before the first server list.
   */
  connectionFor(key: string): MemcachedConnection {
    if (this.failed.size > 0) this.maybeProbe();
    const { ring, connections } = this.current();
    return connections.get(ring.serverFor(key))!;
  }

  /**
   * The server (`host:port`) owning `key` on the live ring.
   *
   * @throws TieredCacheError `E_NOT_CONNECTED` before the first server list.
   */
  serverFor(key: string): string {
    return this.current().ring.serverFor(key);
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
   * Takes the server of `connection` off the ring after a connection error (not a timeout of a
   * connected server, nor an error status), and reports it (see `onConnectionError`).
   */
  noteFailure(connection: MemcachedConnection, error: unknown): void {
    if (!(error instanceof MemcachedError) || error.kind !== 'connection' || this.closed) return;
    this.options.onConnectionError();
    const placement = this.placement;
    const address = connection.address;
    if (this.options.failoverMs === 0 || placement === undefined) return;
    // A connection of a server already removed, or a server already out: nothing to do.
    if (placement.connections.get(address) !== connection || this.failed.has(address)) return;
    this.failed.set(address, this.options.clock.now() + this.options.failoverMs);
    this.placement = this.withLiveRing(placement);
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

  /** Refuses further work, waits for a probe in flight, then closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    await this.probing;
    await Promise.all([...(this.placement?.connections.values() ?? [])].map((c) => c.close()));
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
          new MemcachedConnection(server, { timeoutMs: this.options.timeoutMs }),
      );
    }
    const full = new HashRing(servers.map((s) => s.address));
    return { connections, full, ring: full };
  }
}
