import { readdirSync, readFileSync } from 'node:fs';
import * as memjs from 'memjs';
import { TieredStore, type MemcachedDiscoveryOptions } from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { MemcachedNode } from '../harness/memcached';

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

/** Starts a small extra memcached and adds it to `registry`, which the caller stops afterwards. */
export async function startNode(registry: MemcachedNode[]): Promise<MemcachedNode> {
  const node = await MemcachedNode.start({ memoryMb: 16 });
  registry.push(node);
  return node;
}

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
 */
export async function discoveredChain(
  discovery: MemcachedDiscoveryOptions,
  namespace: string,
): Promise<{ chain: TieredStore; errors: Error[] }> {
  const { cassandra } = testServers();
  const chain = new TieredStore({
    namespace,
    tiers: [
      { type: 'memcached', discovery, timeout: 2000 },
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
