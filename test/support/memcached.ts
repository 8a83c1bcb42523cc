import { readdirSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import * as memjs from 'memjs';
import { TieredStore } from '../../lib';
import type {
  MemcachedDiscoveryOptions,
  MemcachedTierOptions,
} from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { testServers, uniqueName } from '../harness/env';
import { MemcachedNode } from '../harness/memcached';
import type { ElastiCacheEndpoint } from './elasticache-endpoint';

/** Raw memjs clients, one per server, to look at what each server really holds. */
export class RawMemcached {
  private readonly clients = new Map<string, memjs.Client>();

  /** The client for `address`, created on first use. */
  client(address: string): memjs.Client {
    let client = this.clients.get(address);
    if (!client) {
      client = memjs.Client.create(address, { retries: 0, timeout: 2, logger: { log() {} } });
      this.clients.set(address, client);
    }
    return client;
  }

  async get(address: string, key: string): Promise<string | undefined> {
    const { value } = await this.client(address).get(key);
    return value?.toString() ?? undefined;
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/**
 * What a memcached spec opens, closed by one `afterAll(() => bed.close())`: extra memcached
 * processes (killed), tiers, stores and configuration endpoints, and raw clients to look at what
 * each server really holds.
 */
export class MemcachedTestbed {
  readonly raw = new RawMemcached();
  private readonly nodes: MemcachedNode[] = [];
  private readonly tiers: MemcachedTier[] = [];
  private readonly stores: TieredStore[] = [];
  private readonly endpoints: ElastiCacheEndpoint[] = [];

  /** Starts a small extra memcached. */
  async node(): Promise<MemcachedNode> {
    const node = await MemcachedNode.start({ memoryMb: 16 });
    this.nodes.push(node);
    return node;
  }

  tier<T extends MemcachedTier>(tier: T): T {
    this.tiers.push(tier);
    return tier;
  }

  store<T extends TieredStore>(store: T): T {
    this.stores.push(store);
    return store;
  }

  endpoint(endpoint: ElastiCacheEndpoint): ElastiCacheEndpoint {
    this.endpoints.push(endpoint);
    return endpoint;
  }

  async close(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.disconnect()));
    await Promise.all(this.tiers.map((t) => t.close()));
    await Promise.all(this.endpoints.map((e) => e.close()));
    this.raw.close();
    await Promise.all(this.nodes.map((n) => n.stop('SIGKILL')));
  }
}

export const buf = (s: string): Buffer => Buffer.from(s);
export const str = (b: Buffer | undefined): string | undefined => b?.toString();

/** The pid of a running harness memcached. */
export function pidOf(node: MemcachedNode): number {
  const pid = node.pid;
  if (!pid) throw new Error(`no pid for memcached ${node.address}`);
  return pid;
}

/** Sends SIGSTOP and waits until every thread of the process is stopped (state `T`). */
export async function freeze(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + 2000;
  for (;;) {
    const tasks = readdirSync(`/proc/${pid}/task`);
    const states = tasks.map((t) => {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    });
    if (states.every((s) => s === 'T')) return;
    if (Date.now() > deadline) throw new Error(`pid ${pid} not stopped: ${states.join('')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A store over [memcached found through `discovery`, Cassandra in a keyspace of its own], the
 * chain the scaling and failure tests load, connected, with its error events collected. Request
 * timeouts are 2 s: the 2-core test machine also runs Cassandra's JVM, memcached and Jest.
 * `memcached` adds options of the memcached tier.
 */
export async function discoveredChain(
  discovery: MemcachedDiscoveryOptions,
  namespace: string,
  memcached: Partial<MemcachedTierOptions> = {},
): Promise<{ chain: TieredStore; errors: Error[] }> {
  const { cassandra } = testServers();
  const chain = new TieredStore({
    namespace,
    tiers: [
      { type: 'memcached', discovery, timeout: 2000, ...memcached },
      { type: 'cassandra', ...cassandra, keyspace: uniqueName('x').toLowerCase() },
    ],
  });
  const errors: Error[] = [];
  chain.on('error', (err: Error) => errors.push(err));
  try {
    await chain.connect({ failFast: true });
  } catch (err) {
    await chain.disconnect();
    throw err;
  }
  return { chain, errors };
}

/** `curr_connections` of a memcached, read over the text protocol on a socket of its own. */
export function currConnections(address: string): Promise<number> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let text = '';
    socket.setTimeout(2000, () => socket.destroy(new Error('stats timed out')));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.endsWith('END\r\n')) return;
      socket.destroy();
      const match = /STAT curr_connections (\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`no curr_connections in ${text}`));
    });
    socket.connect(Number(address.slice(colon + 1)), address.slice(0, colon), () =>
      socket.write('stats\r\n'),
    );
  });
}
