import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, policies } from 'cassandra-driver';
import { releaseClient } from '../../lib/tiers/cassandra/driver';
import { launchCassandra, seedProvider } from './cassandra';
import { waitForPort } from './ports';
import type { ManagedProcess } from './processes';

/** Loopback addresses of the two-node cluster (127.0.0.1 is the global setup's single node). */
export const CLUSTER_HOSTS = ['127.0.0.2', '127.0.0.3'] as const;

/** Resolves whether `port` can be listened on at `host` right now. */
function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A port free on every one of `hosts`: the kernel's pick on the first, checked on the others.
 * Cassandra needs one cluster-wide storage port, and cassandra-driver one native port.
 */
async function portFreeOn(hosts: readonly string[], taken: readonly number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once('error', reject);
      server.listen(0, hosts[0], () => {
        const address = server.address();
        server.close(() =>
          address && typeof address === 'object'
            ? resolve(address.port)
            : reject(new Error('could not read the port of a probe socket')),
        );
      });
    });
    if (taken.includes(port)) continue;
    const free = await Promise.all(hosts.map((h) => canListen(h, port)));
    if (free.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')} after 50 tries`);
}

/**
 * Murmur3 tokens splitting the ring evenly between `n` nodes (one token each: starts fastest,
 * and with replication factor n every node holds every row anyway).
 */
export function evenTokens(n: number): string[] {
  const min = -(2n ** 63n);
  return Array.from({ length: n }, (_, i) => String(min + (2n ** 64n * BigInt(i)) / BigInt(n)));
}

/** One node of a {@link CassandraCluster}. */
export interface ClusterNode {
  /** Its loopback address: listen, broadcast and CQL (`rpc_address`) address. */
  readonly host: string;
  /** `host:port` of its CQL port. */
  readonly address: string;
  /** Its data, commit log and logs (the JVM's command line names it). */
  readonly dir: string;
  readonly process: ManagedProcess;
}

/**
 * A real multi-node Cassandra 2.1 cluster on loopback addresses (127.0.0.2, 127.0.0.3…), for
 * tests that need replication and a node that dies. Every node uses the same CQL and storage
 * ports on its own address (cassandra-driver reaches discovered peers at one port), every node
 * is a seed, tokens split the ring evenly and nobody bootstraps (`auto_bootstrap: false`), so
 * the nodes start side by side. Not part of the global setup: a test that needs it starts it.
 */
export class CassandraCluster {
  /** `observer host` + ' ' + `host` for every node an observer's gossip last reported DOWN. */
  private readonly down = new Set<string>();

  private constructor(
    readonly port: number,
    readonly nodes: readonly ClusterNode[],
    private readonly baseDir: string,
  ) {}

  /** `host:port` of every node, for `contactPoints`. */
  get contactPoints(): string[] {
    return this.nodes.map((n) => n.address);
  }

  /**
   * Starts one JVM per host and resolves once every node accepts CQL connections and lists every
   * other node, with the same schema version, in its `system.peers`.
   */
  static async start(
    opts: { hosts?: readonly string[]; heapMb?: number; startTimeoutMs?: number } = {},
  ): Promise<CassandraCluster> {
    const hosts = opts.hosts ?? CLUSTER_HOSTS;
    const timeoutMs = opts.startTimeoutMs ?? 180_000;
    const port = await portFreeOn(hosts, []);
    const storagePort = await portFreeOn(hosts, [port]);
    const sslStoragePort = await portFreeOn(hosts, [port, storagePort]);
    const tokens = evenTokens(hosts.length);
    const baseDir = await mkdtemp(join(tmpdir(), 'tiered-cache-cassandra-cluster-'));
    const nodes: ClusterNode[] = [];
    const cluster = new CassandraCluster(port, nodes, baseDir);
    try {
      for (const [i, host] of hosts.entries()) {
        const dir = join(baseDir, `node${i + 1}`);
        await mkdir(dir);
        const address = `${host}:${port}`;
        const proc = await launchCassandra({
          dir,
          name: `cassandra ${address}`,
          heapMb: opts.heapMb ?? 512,
          overrides: {
            cluster_name: `tiered-cache-cluster-${port}`,
            num_tokens: 1,
            initial_token: tokens[i],
            auto_bootstrap: false,
            native_transport_port: port,
            storage_port: storagePort,
            ssl_storage_port: sslStoragePort,
            listen_address: host,
            rpc_address: host,
            seed_provider: seedProvider(hosts),
          },
        });
        nodes.push({ host, address, dir, process: proc });
        cluster.watchGossip(host, proc);
      }
      const deadline = Date.now() + timeoutMs;
      await Promise.all(
        nodes.map((n) =>
          waitForPort(n.host, port, {
            timeoutMs,
            what: `cassandra ${n.address}`,
            alive: () => n.process.deadReason(),
          }),
        ),
      );
      await Promise.all(nodes.map((n) => cluster.waitForPeers(n, deadline)));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Kills node `index` with SIGKILL (no shutdown, no flush) and waits for it to exit. */
  async kill(index: number): Promise<void> {
    await this.nodes[index].process.stop('SIGKILL');
  }

  /**
   * Resolves once every other running node's gossip has marked node `index` DOWN (its failure
   * detector convicted it: about 10 to 20 s after a kill with the default
   * `phi_convict_threshold`). Until then a survivor still picks the dead node as a replica, e.g.
   * as the leader of a counter update.
   */
  async waitUntilDown(index: number, timeoutMs = 60_000): Promise<void> {
    const target = this.nodes[index].host;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const observers = this.nodes.filter((n) => n.host !== target && n.process.running);
      if (observers.length === 0) throw new Error(`no running node left to see ${target} down`);
      if (observers.every((n) => this.down.has(`${n.host} ${target}`))) return;
      if (Date.now() > deadline) {
        throw new Error(`cassandra ${target} was not marked down within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills every node still running and removes all their data. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process.stop('SIGKILL')));
    await rm(this.baseDir, { recursive: true, force: true });
  }

  /** Follows the gossip state changes that `host` logs (Cassandra logs to stdout here). */
  private watchGossip(host: string, proc: ManagedProcess): void {
    let partial = '';
    proc.child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const change = /InetAddress \/([\d.]+) is now (UP|DOWN)/.exec(line);
        if (change?.[2] === 'DOWN') this.down.add(`${host} ${change[1]}`);
        else if (change) this.down.delete(`${host} ${change[1]}`);
      }
    });
  }

  /**
   * Polls `node`'s own view until every other node is in its `system.peers`, with an address to
   * reach it at and the same schema version as `node` itself.
   */
  private async waitForPeers(node: ClusterNode, deadline: number): Promise<void> {
    const others = this.nodes.filter((n) => n !== node).map((n) => n.host);
    let client: Client | undefined;
    let last: string;
    let delay = 100;
    try {
      for (;;) {
        const dead = node.process.deadReason();
        if (dead) throw new Error(`cassandra ${node.address} stopped: ${dead}`);
        try {
          client ??= await this.connectTo(node);
          const local = await client.execute('SELECT schema_version FROM system.local');
          const mine = String(local.first()?.get('schema_version'));
          const peers = await client.execute(
            'SELECT peer, rpc_address, schema_version FROM system.peers',
          );
          const seen = peers.rows.filter(
            (r) => r.get('rpc_address') && String(r.get('schema_version')) === mine,
          );
          const listed = seen.map((r) => String(r.get('peer')));
          if (others.every((h) => listed.includes(h))) return;
          last = `peers in agreement: [${listed.join(', ')}] of ${peers.rowLength} listed`;
        } catch (err) {
          last = err instanceof Error ? err.message : String(err);
        }
        if (Date.now() > deadline) {
          throw new Error(
            `cassandra ${node.address} did not see ${others.join(', ')} in time (${last})`,
          );
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 500);
      }
    } finally {
      await client?.shutdown().catch(() => undefined);
    }
  }

  /** A driver client that sends every request to `node` alone. */
  private async connectTo(node: ClusterNode): Promise<Client> {
    const client = new Client({
      contactPoints: [node.address],
      localDataCenter: 'datacenter1',
      protocolOptions: { port: this.port },
      policies: {
        loadBalancing: new policies.loadBalancing.AllowListPolicy(
          new policies.loadBalancing.DCAwareRoundRobinPolicy('datacenter1'),
          [node.address],
        ),
      },
      socketOptions: { connectTimeout: 5000, readTimeout: 10_000 },
    });
    try {
      await client.connect();
    } catch (err) {
      await releaseClient(client);
      throw err;
    }
    return client;
  }
}
