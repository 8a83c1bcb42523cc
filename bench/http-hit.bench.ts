import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PINNED, pinLoadGenerator, startApp, stopApp } from './http-apps';
import type { HttpApp } from './http-app-worker';
import { fmt, load, stats } from './measure';

/**
 * HTTP hits: a Nest Express app answering `GET /product/1` (about 1 KB of JSON) from its cache,
 * three ways, each app in a process of its own: @nestjs/cache-manager's `CacheInterceptor` over
 * its default store, the same `CacheInterceptor` over our `CACHE_MANAGER` (a memory tier), and
 * our `@Cached` handler over the same memory tier. autocannon (50 connections, 3 s) loads each in
 * turn, in alternating rounds; a ratio is the median of the per-round ratios of requests per
 * second. Goals: `@Cached` ≥ 1.2× each `CacheInterceptor`, with p99 no worse than the
 * default store's. With `taskset` and two CPUs or more, the apps run on CPU 0 and autocannon on
 * CPU 1, so that the load generator does not take the app's CPU time in turns (without it, the
 * same app's figures moved by ±15% between rounds).
 *
 * Two more apps are references: the same handler with no cache at all (it builds its answer on
 * each request), the ceiling of any cache that answers through Nest's pipeline and Express's
 * `res.json`, whose ratio to `CacheInterceptor` is printed beside the goal; and that app with a
 * global interceptor that does nothing, what Nest's interceptor pipeline costs by itself (our
 * `@Cached` handlers go through that pipeline, as `CacheInterceptor` does). A third, that
 * handler in an app that imports `TieredCacheModule`, shows what importing the module costs a
 * route without `@Cached()`: nothing, as its ratio to the app without the module tells. Each app's CPU time per request
 * (user and system, read from /proc on Linux) is printed too: it moves less than req/s when the
 * machine is busy.
 */
const ROUNDS = 8;
const SECONDS = 3;
const CONNECTIONS = 50;
const GOAL = 1.2;

interface Running {
  name: HttpApp;
  label: string;
  child: ChildProcess;
  url: string;
}

async function start(name: HttpApp, label: string): Promise<Running> {
  const { child, port } = await startApp('http-app-worker.ts', { BENCH_HTTP_APP: name });
  return { name, label, child, url: `http://127.0.0.1:${port}/product/1` };
}

const stop = (app: Running) => stopApp(app.child);

interface Load {
  rps: number;
  p99: number;
  bytesPerSec: number;
  /** The app's CPU time per request, µs (NaN where /proc is not there). */
  cpuUs: number;
}

/** CPU time (user and system) of process `pid` so far, ms; NaN without /proc. */
function cpuMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in hundredths of a second. */
const CLOCK_TICKS = 100;

async function hammer(app: Running, seconds: number): Promise<Load> {
  const before = cpuMs(app.child.pid);
  const result = await autocannon({ url: app.url, connections: CONNECTIONS, duration: seconds });
  const cpu = cpuMs(app.child.pid) - before;
  if (result.errors > 0 || result.non2xx > 0)
    throw new Error(`${app.url}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    bytesPerSec: result.throughput.average,
    cpuUs: (cpu * 1000) / result.requests.total,
  };
}

export async function httpHit(): Promise<boolean> {
  console.log(
    `\n# HTTP hit: GET of ~1 KB JSON from a warm cache, autocannon ${CONNECTIONS} connections × ${SECONDS} s per app per round, ${ROUNDS} alternating rounds; ${PINNED ? 'apps on CPU 0, autocannon on CPU 1' : 'apps and autocannon share the CPUs'}; ${load()}`,
  );
  pinLoadGenerator();
  const apps = [
    await start('cache-interceptor', '@nestjs/cache-manager CacheInterceptor, default store'),
    await start('cache-interceptor-ours', 'CacheInterceptor over our CACHE_MANAGER (memory)'),
    await start('cached', 'ours: @Cached handler (memory)'),
    await start('uncached', 'no cache: the handler on every request (ceiling)'),
    await start('uncached-module', 'no cache, in an app importing the module (reference)'),
    await start('noop-interceptor', 'no cache, a global no-op interceptor (reference)'),
  ];
  try {
    for (const app of apps) {
      const first = await fetch(app.url);
      if (first.status !== 200) throw new Error(`${app.url}: ${first.status}`);
      await hammer(app, 1); // warm-up: JIT and caches
    }
    const loads = new Map<HttpApp, Load[]>(apps.map((a) => [a.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const app of r % 2 === 0 ? apps : [...apps].reverse())
        loads.get(app.name)!.push(await hammer(app, SECONDS));
    }
    const width = Math.max(...apps.map((a) => a.label.length));
    const median = (l: Load[], field: keyof Load) => stats(l.map((x) => x[field])).median;
    console.log(`  ${'app'.padEnd(width)}  median req/s  median p99 ms  CPU µs/request`);
    for (const app of apps) {
      const l = loads.get(app.name)!;
      console.log(
        `  ${app.label.padEnd(width)}  ${fmt(median(l, 'rps')).padStart(12)}  ${median(l, 'p99')
          .toFixed(1)
          .padStart(13)}  ${median(l, 'cpuUs').toFixed(1).padStart(14)}`,
      );
    }
    const ratio = (a: HttpApp, b: HttpApp, field: keyof Load) =>
      stats(loads.get(a)!.map((x, i) => x[field] / loads.get(b)!.at(i)![field])).median;
    const vsDefault = ratio('cached', 'cache-interceptor', 'rps');
    const vsOurs = ratio('cached', 'cache-interceptor-ours', 'rps');
    const p99 = ratio('cached', 'cache-interceptor', 'p99');
    const ceiling = ratio('uncached', 'cache-interceptor', 'rps');
    const noop = ratio('noop-interceptor', 'cache-interceptor', 'rps');
    const imported = ratio('uncached-module', 'uncached', 'rps');
    const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
    console.log(
      `  ${verdict(vsDefault >= GOAL)} @Cached / CacheInterceptor (default store): ${vsDefault.toFixed(2)}× req/s (target ≥ ${GOAL}×)`,
    );
    console.log(
      `  ${verdict(p99 <= 1)} @Cached p99 / CacheInterceptor (default store) p99: ${p99.toFixed(2)}× (target ≤ 1×)`,
    );
    console.log(
      `  ${verdict(vsOurs >= GOAL)} @Cached / CacheInterceptor over our CACHE_MANAGER: ${vsOurs.toFixed(2)}× req/s (target ≥ ${GOAL}×)`,
    );
    console.log(
      `  no cache / CacheInterceptor (default store): ${ceiling.toFixed(2)}× req/s (the ceiling, reference)`,
    );
    console.log(
      `  no cache with a no-op interceptor / CacheInterceptor (default store): ${noop.toFixed(2)}× req/s (reference)`,
    );
    console.log(
      `  no cache, module imported / no cache: ${imported.toFixed(2)}× req/s (a route without @Cached(), reference)`,
    );
    return vsDefault >= GOAL && p99 <= 1 && vsOurs >= GOAL;
  } finally {
    await Promise.all(apps.map(stop));
  }
}
