import { createTieredStore, type TieredStore } from '../../lib';
import { eventually } from '../support/eventually';
import { withFaults } from '../support/fault-tier';
import { MapTier, type MapBackend } from '../support/map-tier';

/** A far tier whose `get` reads at once but answers only once `holdAnswers` settles. */
class SlowAnswers extends MapTier {
  holdAnswers: Promise<void> | undefined;
  answersHeld = 0;
  override async get(key: string) {
    const value = await super.get(key);
    if (this.holdAnswers) {
      this.answersHeld++;
      await this.holdAnswers;
    }
    return value;
  }
}

/**
 * A delete (or a newer write) in a nearer shared tier is not undone by another instance's
 * backfill of the value it read from a farther tier just before: two stores over the same two
 * shared tiers ("memcached" near, "Cassandra" far: MapTiers sharing their backends), the writer's
 * far tier slower than its near one, as Cassandra is.
 */
describe('tombstones: a delete is not undone by a backfill', () => {
  const stores: TieredStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.disconnect()));
  });

  async function rig() {
    const nearServer: MapBackend = new Map();
    const farServer: MapBackend = new Map();
    const writerFar = withFaults(new MapTier({ name: 'far', backend: farServer }));
    // The reader's near tier records what its backfill `add`s answered.
    const readerNear = new MapTier({ name: 'near', backend: nearServer });
    const added: boolean[] = [];
    const add = readerNear.add.bind(readerNear);
    readerNear.add = async (key, value, ttlMs) => {
      const ok = await add(key, value, ttlMs);
      added.push(ok);
      return ok;
    };
    const store = (near: MapTier, far: MapTier | typeof writerFar) => {
      const s = createTieredStore({ namespace: 'ts', tiers: [{ type: 'memory' }, near, far] });
      stores.push(s);
      return s;
    };
    const writer = store(new MapTier({ name: 'near', backend: nearServer }), writerFar);
    const readerFar = new SlowAnswers({ name: 'far', backend: farServer });
    const reader = store(readerNear, readerFar);
    const other = () =>
      store(
        new MapTier({ name: 'near', backend: nearServer }),
        new MapTier({ name: 'far', backend: farServer }),
      );
    await writer.connect();
    await reader.connect();
    return { writer, reader, other, writerFar, readerFar, added, nearServer };
  }

  it("a delete that reached the near tier first: the other instance's backfill of the old value is refused", async () => {
    const { writer, reader, other, writerFar, added } = await rig();
    await writer.set('k', 'old', 600_000);
    writerFar.hang('delete');
    const deleting = writer.delete('k'); // the near tier has it gone; the far one not yet
    // Hung there: the key's delete and its read-through lease's.
    expect(await eventually(() => writerFar.calls.delete === 2, 2000)).toBe(true);
    expect(await reader.get('k')).toBe('old'); // near miss, far hit (the delete has not finished)
    expect(await eventually(() => added.length === 1, 2000)).toBe(true);
    expect(added).toEqual([false]); // the tombstone won
    writerFar.release();
    await expect(deleting).resolves.toBe(true);
    // Nobody reads the deleted value afterwards (before, all of them did until its TTL).
    expect(await writer.get('k')).toBeUndefined();
    const fresh = other();
    expect(await fresh.get('k')).toBeUndefined();
  });

  it('a write that landed first: the backfill of the older value read just before is refused', async () => {
    const { writer, reader, other, readerFar, added, nearServer } = await rig();
    await writer.set('k', 'v1', 600_000);
    nearServer.clear(); // evicted from the near tier
    // The reader's far read sees v1, and its answer is held until v2 is written everywhere.
    let answer: () => void = () => undefined;
    readerFar.holdAnswers = new Promise<void>((resolve) => (answer = resolve));
    const reading = reader.get('k');
    expect(await eventually(() => readerFar.answersHeld === 1, 2000)).toBe(true);
    await writer.set('k', 'v2', 600_000);
    answer();
    expect(await reading).toBe('v1'); // it began before the write
    expect(await eventually(() => added.length === 1, 2000)).toBe(true);
    expect(added).toEqual([false]); // v2, already there, won
    expect(await other().get('k')).toBe('v2');
  });

  it('a deleted key written again is served again (the tombstone does not outlive a write)', async () => {
    const { writer, other } = await rig();
    await writer.set('k', 'v1', 600_000);
    await writer.delete('k');
    expect(await other().get('k')).toBeUndefined();
    await writer.set('k', 'v2', 600_000);
    expect(await other().get('k')).toBe('v2');
    expect(await writer.delete('k')).toBe(true); // the far tier says it held something
    expect(await writer.delete('k')).toBe(false);
  });
});
