import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
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
}

async function hammer(url: string, seconds: number): Promise<Load> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds });
  if (result.errors > 0 || result.non2xx > 0)
    throw new Error(`${url}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    bytesPerSec: result.throughput.average,
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
  ];
  try {
    for (const app of apps) {
      const first = await fetch(app.url);
      if (first.status !== 200) throw new Error(`${app.url}: ${first.status}`);
      await hammer(app.url, 1); // warm-up: JIT and caches
    }
    const loads = new Map<HttpApp, Load[]>(apps.map((a) => [a.name, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const app of r % 2 === 0 ? apps : [...apps].reverse())
        loads.get(app.name)!.push(await hammer(app.url, SECONDS));
    }
    const width = Math.max(...apps.map((a) => a.label.length));
    console.log(`  ${'app'.padEnd(width)}  median req/s  median p99 ms`);
    for (const app of apps) {
      const l = loads.get(app.name)!;
      console.log(
        `  ${app.label.padEnd(width)}  ${fmt(stats(l.map((x) => x.rps)).median).padStart(12)}  ${stats(
          l.map((x) => x.p99),
        )
          .median.toFixed(1)
          .padStart(13)}`,
      );
    }
    const ratio = (a: HttpApp, b: HttpApp, field: keyof Load) =>
      stats(loads.get(a)!.map((x, i) => x[field] / loads.get(b)!.at(i)![field])).median;
    const vsDefault = ratio('cached', 'cache-interceptor', 'rps');
    const vsOurs = ratio('cached', 'cache-interceptor-ours', 'rps');
    const p99 = ratio('cached', 'cache-interceptor', 'p99');
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
    return vsDefault >= GOAL && p99 <= 1 && vsOurs >= GOAL;
  } finally {
    await Promise.all(apps.map(stop));
  }
}
