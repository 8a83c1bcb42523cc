import { Client as CassandraClient, types } from 'cassandra-driver';
import * as memjs from 'memjs';
import { TieredStore, type TierOptions } from '../lib';
import type { ContenderBody } from './isolated';
import { concurrently } from './measure';

/** The remote-hit contenders, each built in a process of its own (see `isolated.ts`). */

/** A raw memjs client over `servers`, without retries or logging. */
export function memjsClient(servers: string[]): memjs.Client {
  return memjs.Client.create(servers.join(','), { retries: 0, logger: { log() {} } });
}

/** A raw cassandra-driver client of one `host:port` contact point. */
export function cassandraClient(contactPoint: string, localDataCenter: string): CassandraClient {
  const [host, port] = contactPoint.split(':');
  return new CassandraClient({
    contactPoints: [host],
    protocolOptions: { port: Number(port ?? 9042) },
    localDataCenter,
  });
}

/** Keys read round-robin, `concurrency` at a time. */
interface Reads {
  keys: string[];
  concurrency: number;
}

/** Raw memjs `get` of keys the parent stored. */
async function memjsGet(args: Reads & { servers: string[] }): Promise<ContenderBody> {
  const raw = memjsClient(args.servers);
  const { keys } = args;
  return {
    run: (ops) =>
      concurrently(ops, args.concurrency, async (i) => {
        if (!(await raw.get(keys[i % keys.length])).value) throw new Error('miss');
      }),
    close: async () => raw.close(),
  };
}

/** 100 (or `keys.length`) raw memjs gets one after another, per operation. */
async function memjsSequentialGets(args: {
  servers: string[];
  keys: string[];
}): Promise<ContenderBody> {
  const raw = memjsClient(args.servers);
  return {
    run: async (ops) => {
      for (let o = 0; o < ops; o++) {
        for (const k of args.keys) if (!(await raw.get(k)).value) throw new Error('miss');
      }
    },
    close: async () => raw.close(),
  };
}

/** A raw prepared cassandra-driver SELECT of keys the parent stored. */
async function cassandraSelect(
  args: Reads & { contactPoint: string; localDataCenter: string; select: string },
): Promise<ContenderBody> {
  const raw = cassandraClient(args.contactPoint, args.localDataCenter);
  await raw.connect();
  const options = { prepare: true, consistency: types.consistencies.localOne };
  const { keys } = args;
  return {
    run: (ops) =>
      concurrently(ops, args.concurrency, async (i) => {
        const rs = await raw.execute(args.select, [keys[i % keys.length]], options);
        if (!rs.first()) throw new Error('miss');
      }),
    close: () => raw.shutdown(),
  };
}

/** A store over `tiers` under `namespace`, connected, as every app builds it. */
export async function connectedStore(
  tiers: TierOptions[],
  namespace: string,
): Promise<TieredStore> {
  const store = new TieredStore({ namespace, tiers });
  await store.connect({ failFast: true });
  return store;
}

/** The store's own `get` of keys the parent stored through a store of the same options. */
async function storeGet(
  args: Reads & { tiers: TierOptions[]; namespace: string },
): Promise<ContenderBody> {
  const store = await connectedStore(args.tiers, args.namespace);
  const { keys } = args;
  return {
    run: (ops) =>
      concurrently(ops, args.concurrency, async (i) => {
        if ((await store.get(keys[i % keys.length])) === undefined) throw new Error('miss');
      }),
    close: () => store.disconnect(),
  };
}

/** The store's `getMany` of all `keys`, per operation. */
async function storeGetMany(args: {
  tiers: TierOptions[];
  namespace: string;
  keys: string[];
}): Promise<ContenderBody> {
  const store = await connectedStore(args.tiers, args.namespace);
  const last = args.keys.length - 1;
  return {
    run: async (ops) => {
      for (let o = 0; o < ops; o++) {
        if ((await store.getMany(args.keys))[last] === undefined) throw new Error('miss');
      }
    },
    close: () => store.disconnect(),
  };
}

export const CONTENDERS = {
  memjsGet,
  memjsSequentialGets,
  cassandraSelect,
  storeGet,
  storeGetMany,
};
