import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
import { PINNED, pinLoadGenerator, startApp, stopApp } from './http-apps';
import { fmt, load, stats } from './measure';

/**
 * Conditional GET: a `@Cached` handler's ~10 KB JSON body from a warm memory tier, answered as a
 * `200` HIT against `304 Not Modified` (every request carries `If-None-Match` with the entry's
 * current `ETag`). Two processes run the same Nest Express app (`http-304-worker.ts`), one per
 * kind of request; autocannon (50 connections, 3 s) loads each in turn, in alternating rounds.
 * Reported: median req/s and bytes received per request (status line, headers and body); the
 * ratio of req/s is the median of the per-round ratios. Goal: the 304 answers at least as many
 * requests per second as the 200 and sends at most a tenth of its bytes. Pinned like `http-hit`
 * (apps on CPU 0, autocannon on CPU 1) when `taskset` and two CPUs are there.
 */
const ROUNDS = 6;
const SECONDS = 3;
const CONNECTIONS = 50;
const PATH = '/doc/1';

interface Running {
  label: string;
  child: ChildProcess;
  url: string;
  headers: Record<string, string>;
  status: number;
}

async function startDocs(): Promise<{ child: ChildProcess; url: string }> {
  const { child, port } = await startApp('http-304-worker.ts');
  return { child, url: `http://127.0.0.1:${port}${PATH}` };
}

const stop = (app: Running) => stopApp(app.child);

interface Load {
  rps: number;
  bytesPerRequest: number;
}

async function hammer(app: Running, seconds: number): Promise<Load> {
  const result = await autocannon({
    url: app.url,
    headers: app.headers,
    connections: CONNECTIONS,
    duration: seconds,
  });
  const answered = result.statusCodeStats?.[String(app.status) as '200']?.count ?? 0;
  if (result.errors > 0 || answered !== result.requests.total)
    throw new Error(
      `${app.label}: ${result.errors} errors, ${result.requests.total - answered} answers other than ${app.status}`,
    );
  return {
    rps: result.requests.average,
    bytesPerRequest: result.throughput.total / result.requests.total,
  };
}

export async function http304(): Promise<boolean> {
  console.log(
    `\n# HTTP conditional GET: ~10 KB JSON from a warm @Cached entry, 200 HIT vs 304 Not Modified, autocannon ${CONNECTIONS} connections × ${SECONDS} s per app per round, ${ROUNDS} alternating rounds; ${PINNED ? 'apps on CPU 0, autocannon on CPU 1' : 'apps and autocannon share the CPUs'}; ${load()}`,
  );
  pinLoadGenerator();
  const [a, b] = [await startDocs(), await startDocs()];
  const apps: Running[] = [
    { label: '200 HIT (no If-None-Match)', ...a, headers: {}, status: 200 },
    { label: '304 (If-None-Match: current ETag)', ...b, headers: {}, status: 304 },
  ];
  try {
    // Fill each app's cache; the 304 app's requests name the ETag its entry got.
    const [plain, conditional] = [await fetch(a.url), await fetch(b.url)];
    const etag = conditional.headers.get('etag');
    if (plain.status !== 200 || conditional.status !== 200 || !etag)
      throw new Error(`warm-up: ${plain.status}, ${conditional.status}, ETag ${etag}`);
    const bodyBytes = (await plain.arrayBuffer()).byteLength;
    await conditional.arrayBuffer();
    apps[1].headers = { 'if-none-match': etag };
    for (const app of apps) await hammer(app, 1); // warm-up: JIT and caches
    const loads = new Map<Running, Load[]>(apps.map((app) => [app, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const app of r % 2 === 0 ? apps : [...apps].reverse())
        loads.get(app)!.push(await hammer(app, SECONDS));
    }
    const width = Math.max(...apps.map((app) => app.label.length));
    console.log(`  body: ${fmt(bodyBytes)} bytes of JSON`);
    console.log(`  ${'answer'.padEnd(width)}  median req/s  bytes/request`);
    for (const app of apps) {
      const l = loads.get(app)!;
      console.log(
        `  ${app.label.padEnd(width)}  ${fmt(stats(l.map((x) => x.rps)).median).padStart(12)}  ${fmt(
          stats(l.map((x) => x.bytesPerRequest)).median,
        ).padStart(13)}`,
      );
    }
    const [hit, notModified] = apps.map((app) => loads.get(app)!);
    const rps = stats(notModified.map((x, i) => x.rps / hit[i].rps)).median;
    const bytes = stats(
      notModified.map((x, i) => x.bytesPerRequest / hit[i].bytesPerRequest),
    ).median;
    const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
    console.log(`  ${verdict(rps >= 1)} 304 / 200 HIT: ${rps.toFixed(2)}× req/s (target ≥ 1×)`);
    console.log(
      `  ${verdict(bytes <= 0.1)} 304 / 200 HIT: ${bytes.toFixed(3)}× bytes per request (target ≤ 0.1×)`,
    );
    return rps >= 1 && bytes <= 0.1;
  } finally {
    await Promise.all(apps.map(stop));
  }
}
