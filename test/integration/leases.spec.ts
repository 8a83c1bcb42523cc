import {
  CassandraTier,
  MemcachedTier,
  MemoryTier,
  TieredStore,
  type Tier,
  type TierOptions,
} from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';

const servers = testServers();
const keyspace = uniqueName('leases').toLowerCase();

describe('compare-and-delete on every tier (real servers)', () => {
  // Each tier with the payload it holds: bytes on the servers, records in process memory.
  const tiers = {
    memory: () => ({
      tier: new MemoryTier({ type: 'memory' }, new ManualClock()) as Tier<unknown>,
      holder: (s: string): unknown => MemoryTier.record(s),
    }),
    memcached: () => ({
      tier: new MemcachedTier({ type: 'memcached', servers: servers.memcached }) as Tier<unknown>,
      holder: (s: string): unknown => Buffer.from(s),
    }),
    cassandra: () => ({
      tier: new CassandraTier({
        type: 'cassandra',
        ...servers.cassandra,
        keyspace,
      }) as Tier<unknown>,
      holder: (s: string): unknown => Buffer.from(s),
    }),
  };

  it.each(Object.keys(tiers) as Array<keyof typeof tiers>)(
    '%s: deletes only while the key holds the expected value',
    async (kind) => {
      const { tier, holder } = tiers[kind]();
      await tier.connect();
      try {
        const key = uniqueName('cad');
        const mine = holder('holder-a');
        expect(await tier.deleteIf(key, mine)).toBe(false); // absent
        expect(await tier.add(key, mine, 60_000)).toBe(true);
        expect(await tier.add(key, holder('holder-b'), 60_000)).toBe(false);
        expect(await tier.deleteIf(key, holder('holder-b'))).toBe(false);
        expect(await tier.get(key)).toEqual(mine);
        expect(await tier.deleteIf(key, holder('holder-a'))).toBe(true);
        expect(await tier.get(key)).toBeUndefined();
        expect(await tier.add(key, holder('holder-b'), 60_000)).toBe(true);
      } finally {
        await tier.close();
      }
    },
  );
});

describe('TieredStore leases (real servers)', () => {
  const open: TieredStore[] = [];
  const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
  const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };
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
    const tokenA = Buffer.from('host:1:a');
    const tokenB = Buffer.from('host:2:b');
    expect(await a.acquireLease('k', tokenA, 5000)).toBe('acquired');
    expect(await b.acquireLease('k', tokenB, 5000)).toBe('held');
    expect(await b.leaseHolder('k')).toEqual(tokenA);
    await b.releaseLease('k', tokenB); // not the holder: no effect
    expect(await b.acquireLease('k', tokenB, 5000)).toBe('held');
    await a.releaseLease('k', tokenA);
    expect(await a.leaseHolder('k')).toBeUndefined();
    expect(await b.acquireLease('k', tokenB, 5000)).toBe('acquired');
    // A delete of the key, from any instance, invalidates its lease.
    await a.delete('k');
    expect(await b.leaseHolder('k')).toBeUndefined();
    // Leases never show up as values.
    expect(await a.get('k')).toBeUndefined();
  });

  it('is local (in-process only) without a shared tier', async () => {
    const s = await store([{ type: 'memory' }]);
    expect(await s.acquireLease('k', Buffer.from('t'), 5000)).toBe('local');
    expect(await s.leaseHolder('k')).toBeNull();
  });
});
