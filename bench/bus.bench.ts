import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TierOptions } from '../lib';
import type { BusWorkerCommand, BusWorkerConfig, Collected } from './bus-worker';
import { productKeys } from './fixtures';
import { compare, report, type Contender } from './measure';
import type { BenchServers } from './servers';

/** Invalidations per contender: ROUNDS alternated rounds of PER_ROUND, one every INTERVAL_MS. */
const ROUNDS = 4;
const PER_ROUND = 500;
const INTERVAL_MS = 1;
const WARMUP = 200;

const WORKER = join(__dirname, 'bus-worker.ts');

/** A process of `bus-worker.ts`: commands out, answers (matched by id) back. */
class BusWorker {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(m: never): void; reject(e: Error): void }>();

  private constructor(
    readonly label: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (m: { id?: number; type: string; message?: string }) => {
      const w = m.id === undefined ? undefined : this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id!);
      if (m.type === 'error') w.reject(new Error(`${label}: ${m.message}`));
      else w.resolve(m as never);
    });
    child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`${label} exited with ${code}`));
      this.waiting.clear();
    });
  }

  static async start(label: string, config: BusWorkerConfig): Promise<BusWorker> {
    const child = fork(WORKER, [], {
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      env: {
        ...process.env,
        TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json'),
        BUS_WORKER: JSON.stringify(config),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker = new BusWorker(label, child);
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`${label} exited with ${code}`));
      child.once('exit', onExit);
      child.once('message', (m: { type: string; message?: string }) => {
        child.off('exit', onExit);
        if (m.type === 'ready') resolve();
        else reject(new Error(`${label}: ${m.message}`));
      });
    }).catch(async (err: unknown) => {
      await worker.close();
      throw err;
    });
    return worker;
  }

  request<T>(command: BusWorkerCommand): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (m: never) => void, reject });
      this.child.send({ ...command, id });
    });
  }

  /** Calls `fn` with each probe key the worker reports receiving, until the returned undo. */
  onProbe(fn: (key: string) => void): () => void {
    const listener = (m: { type: string; key?: string }) => {
      if (m.type === 'probe') fn(m.key!);
    };
    this.child.on('message', listener);
    return () => this.child.off('message', listener);
  }

  async close(): Promise<void> {
    const { child } = this;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.send({ cmd: 'close', id: 0 });
    else child.kill('SIGKILL');
    // A worker that does not close within 10 s is killed.
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** Processes started so far, all closed at the end whatever happens. */
class Workers {
  private readonly all: BusWorker[] = [];

  async start(label: string, config: BusWorkerConfig): Promise<BusWorker> {
    const w = await BusWorker.start(label, config);
    this.all.push(w);
    return w;
  }

  async close(): Promise<void> {
    await Promise.all(this.all.splice(0).map((w) => w.close()));
  }
}

interface Pair {
  name: string;
  /** What the receiving side's timestamp is taken in. */
  hook: string;
  sender: BusWorker;
  receiver: BusWorker;
  /** Delivery times, µs, per round; and received − message `at` (ours), ms. */
  deliveryUs: number[][];
  /** How long the sender's set()/delete() calls took, µs. */
  callUs: number[];
  sentAtLagMs: number[];
  sent: number;
}

/**
 * The invalidation bus: (1) how long an invalidation takes from one process to another, ours
 * against BentoCache's Redis bus on the same Redis, and (2) what the bus costs a `set` and a
 * `delete` on a store of memory + memcached, against the same store without it.
 */
export async function bus(servers: BenchServers): Promise<boolean> {
  const workers = new Workers();
  try {
    const delivered = await delivery(servers, workers);
    const cost = await opsCost(servers, workers);
    return delivered && cost;
  } finally {
    await workers.close();
  }
}

/**
 * Two processes per bus, a sender and a receiver; the sender writes (even) or deletes (odd) a key
 * of its own for each invalidation, one at a time, one per ms. Our sender and receiver are stores
 * of a memory tier with the bus (the bus needs no shared tier); BentoCache's are a memory L1 with
 * its Redis bus. Rounds alternate between the two, ROUNDS × PER_ROUND invalidations each, after
 * a warm-up round each.
 */
async function delivery(servers: BenchServers, workers: Workers): Promise<boolean> {
  const redisUrl = servers.redis.url;
  const namespace = `busdelivery${process.pid}`;
  const ourTiers: TierOptions[] = [{ type: 'memory' }];
  const bentoName = `bench${process.pid}`;
  const [oursA, oursB, bentoA, bentoB] = await Promise.all([
    workers.start('ours sender', { role: 'ours', redisUrl, namespace, tiers: ourTiers }),
    workers.start('ours receiver', { role: 'ours', redisUrl, namespace, tiers: ourTiers }),
    workers.start('bento sender', { role: 'bento', redisUrl, name: bentoName }),
    workers.start('bento receiver', { role: 'bento', redisUrl, name: bentoName }),
  ]);
  const pairs: Pair[] = [
    {
      name: 'bentocache (L1 + Redis bus)',
      hook: "receiver's 'bus:message:received' event (its handler, right before the L1 delete)",
      sender: bentoA,
      receiver: bentoB,
      deliveryUs: [],
      callUs: [],
      sentAtLagMs: [],
      sent: 0,
    },
    {
      name: 'ours (memory + bus)',
      hook: "receiver's 'bus' event of type invalidated (right after the memory-tier removal starts)",
      sender: oursA,
      receiver: oursB,
      deliveryUs: [],
      callUs: [],
      sentAtLagMs: [],
      sent: 0,
    },
  ];
  for (const p of pairs) await subscribed(p);
  for (const p of pairs) await round(p, `warm`, WARMUP, false);
  // From here on, any other bus event (a gap, the bus going down) is reported.
  await Promise.all([oursA, oursB].map((w) => w.request({ cmd: 'stats' })));
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of r % 2 === 0 ? pairs : [...pairs].reverse()) await round(p, `r${r}`, PER_ROUND);
  }

  console.log(
    `\n## bus: invalidation delivery between two processes (${ROUNDS * PER_ROUND} per bus, one every ${INTERVAL_MS} ms, awaited one at a time, same Redis, ${ROUNDS} alternated rounds)`,
  );
  console.log(
    "  measured: sender's monotonic clock just before its set()/delete() (alternately) → the",
  );
  console.log("  receiver's monotonic clock (CLOCK_MONOTONIC, one clock for every process) in:");
  for (const p of pairs) console.log(`    ${p.name}: ${p.hook}`);
  const width = Math.max(...pairs.map((p) => p.name.length));
  console.log(
    `  ${'bus'.padEnd(width)}  ${'delivered'.padStart(11)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'max ms'.padStart(8)}`,
  );
  const figures = pairs.map((p) => {
    const all = p.deliveryUs.flat();
    const f = percentiles(all.map((us) => us / 1000));
    console.log(
      `  ${p.name.padEnd(width)}  ${`${all.length}/${p.sent}`.padStart(11)}  ${ms(f.p50)}  ${ms(f.p99)}  ${ms(f.max)}`,
    );
    return { ...f, delivered: all.length };
  });
  const [theirs, ours] = figures;
  console.log(
    `  ours / bentocache (lower is faster): p50 ${ratio(ours.p50, theirs.p50)}, p99 ${ratio(ours.p99, theirs.p99)}, max ${ratio(ours.max, theirs.max)}`,
  );
  // Per round, both buses ran back to back: the median of the rounds' p50 ratios survives a
  // neighbour on the machine slowing one round.
  const roundRatios = pairs[1].deliveryUs.map(
    (r, i) => percentiles(r).p50 / percentiles(pairs[0].deliveryUs[i]).p50,
  );
  const p50Ratio = median(roundRatios);
  console.log(
    `  ours / bentocache p50, median of ${ROUNDS} paired rounds: ${p50Ratio.toFixed(2)}× (rounds: ${roundRatios.map((r) => r.toFixed(2)).join(', ')})`,
  );
  const calls = pairs.map((p) => percentiles(p.callUs.map((us) => us / 1000)));
  console.log(
    `  the sender's set()/delete() call itself, p50 / p99: bentocache ${calls[0].p50.toFixed(3)} / ${calls[0].p99.toFixed(3)} ms (resolves once Redis answered its PUBLISH), ours ${calls[1].p50.toFixed(3)} / ${calls[1].p99.toFixed(3)} ms (resolves before publishing, which follows after the tick)`,
  );
  const lag = percentiles(pairs[1].sentAtLagMs);
  console.log(
    `  ours by its messages' own \`at\` (publish → receipt, wall clocks of both processes): p50 ${lag.p50.toFixed(3)} ms, p99 ${lag.p99.toFixed(3)} ms, max ${lag.max.toFixed(3)} ms`,
  );
  const events = await Promise.all(
    [oursA, oursB].map((w) => w.request<{ otherEvents: string[] }>({ cmd: 'stats' })),
  );
  const other = events.flatMap((e) => e.otherEvents);
  console.log(
    `  our bus events other than invalidated during the rounds: ${other.length > 0 ? other.join('; ') : 'none'}`,
  );

  let ok = true;
  const check = (pass: boolean, line: string) => {
    ok &&= pass;
    console.log(`  ${pass ? 'PASS' : 'MISS'} ${line}`);
  };
  for (const [i, p] of pairs.entries())
    check(
      figures[i].delivered === p.sent,
      `${p.name} delivered ${figures[i].delivered} of ${p.sent} invalidations (target all)`,
    );
  // The issue's goal: p99 well under 50 ms on loopback. The ratio to BentoCache's is printed
  // above: ours gathers a writer's keys for up to about 1 ms (one PUBLISH per interval, not per
  // write), and its writes resolve before publishing, BentoCache's once Redis answered.
  const oursP99 = percentiles(pairs[1].deliveryUs.flat().map((us) => us / 1000)).p99;
  check(oursP99 < 50, `ours delivery p99 ${oursP99.toFixed(1)} ms (target < 50 ms on loopback)`);
  return ok;
}

/** Sends probe invalidations until the receiver reports one: its subscription works. */
async function subscribed(p: Pair): Promise<void> {
  let seen = false;
  const undo = p.receiver.onProbe(() => (seen = true));
  try {
    for (let n = 0; !seen; n++) {
      if (n >= 200) throw new Error(`${p.name}: the receiver got no probe in 10 s`);
      await p.sender.request({ cmd: 'send', keys: [`probe:${n}`], intervalMs: 0 });
      await sleep(50);
    }
  } finally {
    undo();
  }
}

/** One round of `count` invalidations on `p`, recorded unless it is a warm-up. */
async function round(p: Pair, prefix: string, count: number, record = true): Promise<void> {
  const keys = Array.from({ length: count }, (_, i) => `${prefix}:${i}`);
  const { starts, callUs } = await p.sender.request<{ starts: number[]; callUs: number[] }>({
    cmd: 'send',
    keys,
    intervalMs: INTERVAL_MS,
  });
  // Waits for the stragglers (at most 2 s): what is missing then counts as not delivered.
  let got: Collected;
  const deadline = Date.now() + 2000;
  for (;;) {
    got = await p.receiver.request<Collected>({ cmd: 'collect', keys });
    if (got.at.every((t) => t !== null) || Date.now() > deadline) break;
    await sleep(20);
  }
  if (!record) return;
  p.sent += count;
  const times: number[] = [];
  got.at.forEach((t, i) => {
    if (t === null) return;
    times.push(t - starts[i]);
    const lag = got.sentAtLagMs[i];
    if (lag !== null) p.sentAtLagMs.push(lag);
  });
  p.deliveryUs.push(times);
  p.callUs.push(...callUs);
}

interface OpsStats {
  ops: number;
  cpuUsPerOp: number;
  bus?: {
    published: number;
    publishFailed: number;
    dropped: number;
    received: number;
    invalid: number;
  };
  otherEvents: string[];
}

/**
 * A `set` and a `delete` (2,000 product keys round-robin) on a store of memory + memcached, with
 * the bus against without it, each store in a process of its own, rounds paired and alternated as
 * in every scenario: one at a time (each call its own bus message) and 50 at a time (calls of one
 * tick share one). Also each process's CPU per operation.
 */
async function opsCost(servers: BenchServers, workers: Workers): Promise<boolean> {
  const tiers: TierOptions[] = [
    { type: 'memory' },
    { type: 'memcached', servers: servers.memcached },
  ];
  const keys = productKeys(2000);
  const [plain, withBus] = await Promise.all([
    workers.start('store without bus', {
      role: 'ops',
      namespace: `busopsplain${process.pid}`,
      tiers,
      keys,
    }),
    workers.start('store with bus', {
      role: 'ops',
      namespace: `busops${process.pid}`,
      tiers,
      keys,
      redisUrl: servers.redis.url,
    }),
  ]);
  let ok = true;
  for (const [op, concurrency, ops] of [
    ['set', 1, 2000],
    ['set', 50, 5000],
    ['delete', 1, 2000],
    ['delete', 50, 5000],
  ] as const) {
    const base = `${op}, no bus`;
    const ours = `ours: ${op}, bus`;
    const contender = (name: string, w: BusWorker): Contender => ({
      name,
      run: async (n) =>
        (await w.request<{ seconds: number }>({ cmd: 'run', ops: n, op, concurrency })).seconds,
    });
    // Counters start over for this comparison (the warm-up included).
    const before = await Promise.all(
      [plain, withBus].map((w) => w.request<OpsStats>({ cmd: 'stats' })),
    );
    const results = await compare([contender(base, plain), contender(ours, withBus)], {
      ops,
      rounds: 7,
    });
    ok =
      report(
        `bus cost: store ${op} (memory + memcached), concurrency ${concurrency}, with the bus vs without`,
        results,
        // Concurrent writers share a message per interval: the bus must cost them next to nothing.
        // A sequential writer on loopback memcached pays for a publish every millisecond or so:
        // printed, no target (the issue names none; the README gives the figure).
        [
          {
            label: `${op} with bus vs without`,
            ours,
            baseline: base,
            atLeast: concurrency > 1 ? 0.9 : 0,
          },
        ],
      ) && ok;
    const [a, b] = await Promise.all(
      [plain, withBus].map((w) => w.request<OpsStats>({ cmd: 'stats' })),
    );
    const s = b.bus!;
    const published = s.published - before[1].bus!.published;
    console.log(
      `  CPU per ${op} in the store's process: ${a.cpuUsPerOp.toFixed(1)} µs without the bus, ${b.cpuUsPerOp.toFixed(1)} µs with it (${ratio(b.cpuUsPerOp, a.cpuUsPerOp)})`,
    );
    console.log(
      `  bus: ${published} messages published for ${b.ops} ${op}s (${(published / b.ops).toFixed(2)} per ${op}); in all ${s.publishFailed} failed, ${s.dropped} dropped, ${s.invalid} invalid received${b.otherEvents.length ? `; events: ${b.otherEvents.join('; ')}` : ''}`,
    );
  }
  return ok;
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const ms = (v: number) => v.toFixed(3).padStart(8);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
