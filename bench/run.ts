import { adaptive } from './adaptive.bench';
import { bus } from './bus.bench';
import { hitPath } from './hit-path.bench';
import { httpHit } from './http-hit.bench';
import { http304 } from './http-304.bench';
import { jsonTreeCopy, memoryHit } from './memory-hit.bench';
import { operations } from './operations.bench';
import { cassandraHit, memcachedGetMany, memcachedHit } from './remote-hit.bench';
import { BenchServerPool, type BenchServers, type ServerKind } from './servers';
import { stampede } from './stampede.bench';
import { tags, tagsCassandra } from './tags.bench';

type Scenario = [
  name: string,
  run: (servers: BenchServers) => Promise<boolean>,
  needs: ServerKind[],
];

const SCENARIOS: Scenario[] = [
  ['memory-hit', () => memoryHit(), []],
  ['memory-copy', () => jsonTreeCopy(), []],
  ['operations', () => operations(), []],
  ['hit-path', () => hitPath(), []],
  ['adaptive', () => adaptive(), []],
  ['http-hit', () => httpHit(), []],
  ['http-304', () => http304(), []],
  ['memcached-hit', memcachedHit, ['memcached']],
  ['memcached-getmany', memcachedGetMany, ['memcached']],
  ['bus', bus, ['memcached', 'redis']],
  ['tags', tags, ['memcached']],
  ['cassandra-hit', cassandraHit, ['cassandra']],
  ['stampede', stampede, ['memcached', 'cassandra']],
  // After the memory-tier figures of `tags`, once Cassandra runs: invalidateTags on Cassandra.
  ['tags-cassandra', tagsCassandra, ['cassandra']],
];

/**
 * `npm run bench` runs every scenario; `npm run bench -- memcached` those whose name contains the
 * word. Each prints its baselines beside our figures, measured in the same run, and the ratio.
 * Servers come from MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS, or are started on free ports
 * when a scenario first needs them.
 */
async function main(): Promise<void> {
  const filter = process.argv[2];
  const chosen = SCENARIOS.filter(([name]) => !filter || name.includes(filter));
  const pool = new BenchServerPool();
  let ok = true;
  try {
    for (const [, run, needs] of chosen) ok = (await run(await pool.ensure(needs))) && ok;
  } finally {
    await pool.stop();
  }
  console.log(ok ? '\nall targets met' : '\nsome targets missed');
}

void main();
