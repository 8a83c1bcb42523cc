/**
 * XFetch ("Optimal Probabilistic Cache Stampede Prevention", Vattani, Chierichetti and Lowenstein,
 * VLDB 2015): whether a hit at `now` should refresh the entry ahead of its expiry.
 *
 * `now - delta * beta * ln(random()) >= staleAt`: `ln(random())` is negative, so the left side
 * is `now` plus a random lead proportional to the compute time `delta`. Entries that are slow to
 * compute are refreshed earlier; the chance rises to 1 as the expiry nears, and only a few of
 * the many readers of a hot key trigger it. Entries without expiry or compute time never do.
 */
export function shouldRefreshEarly(
  entry: { staleAt: number; delta: number },
  now: number,
  beta: number,
  random: () => number = Math.random,
): boolean {
  if (beta <= 0 || entry.staleAt === 0 || entry.delta <= 0) return false;
  return now - entry.delta * beta * Math.log(random()) >= entry.staleAt;
}
