import { availableParallelism, loadavg } from 'node:os';
/**
 * Tiny benchmark kit: contenders run in interleaved rounds (A B C, then C B A, …) so that machine
 * noise and the debts one leaves to the next (garbage, JIT) hit them alike, and each reports its
 * median ops/s. A ratio between two contenders is the median of their per-round ratios: both ran
 * back to back in each round, so a round slowed by a neighbour on the machine slows both, and the
 * ratio survives noise that moves the separate medians. Figures are only comparable within one
 * run: read the ratios, not the absolute numbers.
 */
export interface Contender {
  name: string;
  /**
   * Runs `ops` operations; resolves when all are done, with the seconds they took when the
   * contender times itself (one in a process of its own, see `isolated.ts`), else nothing.
   */
  run: (ops: number) => Promise<number | void>;
}

export interface Result {
  name: string;
  opsPerSec: number;
  /** Mean time of one operation, microseconds. */
  usPerOp: number;
  /** ops/s of each round, in round order. */
  rounds: number[];
}

export async function compare(
  contenders: Contender[],
  options: { ops: number; rounds?: number; warmupOps?: number },
): Promise<Result[]> {
  const rounds = options.rounds ?? 7;
  for (const c of contenders) await c.run(options.warmupOps ?? Math.ceil(options.ops / 4));
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const t0 = process.hrtime.bigint();
      const own = await c.run(options.ops);
      const seconds = own ?? Number(process.hrtime.bigint() - t0) / 1e9;
      samples.get(c.name)!.push(options.ops / seconds);
    }
  }
  return contenders.map((c) => {
    const perRound = samples.get(c.name)!;
    const opsPerSec = median(perRound);
    return { name: c.name, opsPerSec, usPerOp: 1e6 / opsPerSec, rounds: perRound };
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs `ops` calls of `fn`, at most `concurrency` in flight at once. */
export async function concurrently(
  ops: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < ops) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ops) }, worker));
}

export interface Target {
  /** What is compared, e.g. "store get / raw lru-cache get". */
  label: string;
  ours: string;
  baseline: string;
  /** Required ratio ours/baseline (ops/s), e.g. 0.5; 0: the ratio is printed, nothing required. */
  atLeast: number;
}

/** Prints results and ratio checks; returns false when a target is missed. */
export function report(title: string, results: Result[], targets: Target[]): boolean {
  const by = new Map(results.map((r) => [r.name, r]));
  const width = Math.max(...results.map((r) => r.name.length));
  console.log(`\n## ${title}`);
  for (const r of results) {
    console.log(
      `  ${r.name.padEnd(width)}  ${fmt(r.opsPerSec).padStart(12)} ops/s  ${r.usPerOp.toFixed(2).padStart(9)} µs/op`,
    );
  }
  let ok = true;
  for (const t of targets) {
    const ours = by.get(t.ours)!.rounds;
    const baseline = by.get(t.baseline)!.rounds;
    const ratio = median(ours.map((v, i) => v / baseline[i]));
    const pass = ratio >= t.atLeast;
    ok &&= pass;
    const verdict = t.atLeast > 0 ? `${pass ? 'PASS' : 'MISS'} ` : '';
    const target = t.atLeast > 0 ? `target ≥ ${t.atLeast}×; ` : '';
    console.log(
      `  ${verdict}${t.label}: ${ratio.toFixed(2)}× (${target}median of ${ours.length} paired rounds)`,
    );
  }
  return ok;
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Prints `results` as a table: median ops/s, µs per op, and the rounds' spread. */
export function table(title: string, results: Result[]): void {
  const width = Math.max(...results.map((r) => r.name.length), 'contender'.length);
  console.log(`\n## ${title}`);
  console.log(
    `  ${'contender'.padEnd(width)}  ${'median ops/s'.padStart(13)}  ${'µs/op'.padStart(7)}  rounds' ops/s min–max`,
  );
  for (const r of results) {
    const lo = Math.min(...r.rounds);
    const hi = Math.max(...r.rounds);
    console.log(
      `  ${r.name.padEnd(width)}  ${fmt(r.opsPerSec).padStart(13)}  ${r.usPerOp.toFixed(3).padStart(7)}  ${fmt(lo)}–${fmt(hi)} (±${((100 * (hi - lo)) / 2 / r.opsPerSec).toFixed(0)}%)`,
    );
  }
}

export function stats(values: number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted.at(-1)! };
}

/** The machine's load averages (1, 5, 15 min) and CPU count: how busy it was. */
export function load(): string {
  const [one, five, fifteen] = loadavg().map((l) => l.toFixed(2));
  return `load average ${one}, ${five}, ${fifteen} on ${availableParallelism()} CPUs`;
}
