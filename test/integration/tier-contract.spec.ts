import { TieredStore } from '../../lib/store/tiered-store';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import { localRecord, type Tier } from '../../lib/tiers/tier.interface';
import type { TierOptions } from '../../lib/tiers/tier-options';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';
import { describeTierContract } from '../support/tier-contract';

const servers = testServers();
const keyspace = uniqueName('tier_contract').toLowerCase();
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };

dropKeyspaceAfterAll(keyspace);

const clock = new ManualClock();
describeTierContract('memory', {
  create: () => new MemoryTier({ type: 'memory' }, { clock }) as Tier<unknown>,
  holder: (s) => localRecord(s),
  clock,
  capabilities: { local: true },
});

let memcachedInstances = 0;
describeTierContract('memcached', {
  create: () =>
    new MemcachedTier(
      { type: 'memcached', servers: servers.memcached },
      { name: `memcached[${memcachedInstances++}]` },
    ) as Tier<unknown>,
  holder: (s) => Buffer.from(s),
  capabilities: {
    local: false,
    leases: 'atomic',
    counters: 'atomic',
    ttlResolutionMs: 1000,
    maxKeyBytes: 250,
  },
});

let cassandraInstances = 0;
describeTierContract('cassandra', {
  create: () =>
    new CassandraTier(
      // DDL on a cold single node can take a few seconds.
      { type: 'cassandra', ...servers.cassandra, keyspace, timeout: 10_000 },
      { name: `cassandra[${cassandraInstances++}]` },
    ) as Tier<unknown>,
  holder: (s) => Buffer.from(s),
  capabilities: { local: false, leases: 'consensus', counters: 'additive', ttlResolutionMs: 1000 },
  signedCounters: true,
});

describe('TieredStore leases (real servers)', () => {
  const open: TieredStore[] = [];
  const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
  let namespace: string;

  async function store(tiers: TierOptions[]) {
    const s = new TieredStore({ tiers, namespace });
    open.push(s);
    await s.connect();
    return s;
  }

  beforeEach(() => (namespace = uniqueName('leases')));
  afterEach(async () => void (await Promise.all(open.splice(0).map((s) => s.disconnect()))));

  it.each([
    ['memcached (the farthest one)', [{ type: 'memory' }, memcached, cassandra] as TierOptions[]],
    ['Cassandra when there is no memcached', [{ type: 'memory' }, cassandra] as TierOptions[]],
  ])('on %s: one holder, named; only its release frees it', async (_name, tiers) => {
    const [a, b] = [await store(tiers), await store(tiers)];
    // The lease of key `k`: the same key on every instance of one namespace.
    const lease = a.leaseKey('k');
    expect(b.leaseKey('k')).toBe(lease);
    const tokenA = Buffer.from('host:1:a');
    const tokenB = Buffer.from('host:2:b');
    expect(await a.acquireLease(lease, tokenA, 5000)).toBe('acquired');
    expect(await b.acquireLease(lease, tokenB, 5000)).toBe('held');
    expect(await b.leaseHolder(lease)).toEqual(tokenA);
    await b.releaseLease(lease, tokenB); // not the holder: no effect
    expect(await b.acquireLease(lease, tokenB, 5000)).toBe('held');
    await a.releaseLease(lease, tokenA);
    expect(await a.leaseHolder(lease)).toBeUndefined();
    expect(await b.acquireLease(lease, tokenB, 5000)).toBe('acquired');
    // A delete of the key, from any instance, invalidates its lease.
    await a.delete('k');
    expect(await b.leaseHolder(lease)).toBeUndefined();
    // Leases never show up as values.
    expect(await a.get('k')).toBeUndefined();
  });

  it('is local (in-process only) without a shared tier', async () => {
    const s = await store([{ type: 'memory' }]);
    expect(await s.acquireLease(s.leaseKey('k'), Buffer.from('t'), 5000)).toBe('local');
    expect(await s.leaseHolder(s.leaseKey('k'))).toBeNull();
  });
});
