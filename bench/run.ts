import { jsonTreeCopy, memoryHit } from './memory-hit.bench';
import { cassandraHit, memcachedGetMany, memcachedHit } from './remote-hit.bench';
import { benchServers, type BenchServers } from './servers';
import { stampede } from './stampede.bench';

type Scenario = [
  name: string,
  run: (servers: BenchServers) => Promise<boolean>,
  needsServers: boolean,
];

const SCENARIOS: Scenario[] = [
  ['memory-hit', () => memoryHit(), false],
  ['memory-copy', () => jsonTreeCopy(), false],
  ['memcached-hit', memcachedHit, true],
  ['cassandra-hit', cassandraHit, true],
  ['memcached-getmany', memcachedGetMany, true],
  ['stampede', stampede, true],
];

/**
 * `npm run bench` runs every scenario; `npm run bench -- memcached` those whose name contains the
 * word. Each prints its baselines beside our figures, measured in the same run, and the ratio.
 * Servers come from MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS, or are started on free ports.
 */
async function main(): Promise<void> {
  const filter = process.argv[2];
  const chosen = SCENARIOS.filter(([name]) => !filter || name.includes(filter));
  const servers = chosen.some(([, , needs]) => needs) ? await benchServers() : undefined;
  let ok = true;
  try {
    for (const [, run] of chosen) ok = (await run(servers!)) && ok;
  } finally {
    await servers?.stop();
  }
  console.log(ok ? '\nall targets met' : '\nsome targets missed');
}

void main();
