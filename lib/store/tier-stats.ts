import type { CircuitState } from './circuit-breaker';

/** Counters of one tier, as returned by `TieredStore.stats()`. */
export interface TierStats {
  name: string;
  /** The tier's `kind`: `memory`, `memcached`, `cassandra` or a custom tier's own. */
  kind: string;
  /** Reads answered by this tier. */
  hits: number;
  /** Reads this tier did not have (expired or undecodable entries count here too). */
  misses: number;
  /** Failed or timed-out operations. */
  errors: number;
  /** Entries copied into this tier after a hit further away. */
  backfills: number;
  /** Operations not sent because the circuit was open. */
  skipped: number;
  /** Times the circuit opened. */
  circuitOpened: number;
  circuit: CircuitState;
  /** Latency of reads and writes sent to the tier (not measured for the memory tier). */
  latency: { count: number; meanMs: number; maxMs: number };
  /** Entries and bytes held, for tiers that count them (the memory tier's `size`, `bytes`). */
  held?: { entries: number; bytes: number };
}

/** Mutable counters kept per tier slot. */
export class TierCounters {
  hits = 0;
  misses = 0;
  errors = 0;
  backfills = 0;
  skipped = 0;
  private latencyCount = 0;
  private latencyTotal = 0;
  private latencyMax = 0;

  recordLatency(ms: number): void {
    this.latencyCount++;
    this.latencyTotal += ms;
    if (ms > this.latencyMax) this.latencyMax = ms;
  }

  latency(): TierStats['latency'] {
    return {
      count: this.latencyCount,
      meanMs: this.latencyCount ? this.latencyTotal / this.latencyCount : 0,
      maxMs: this.latencyMax,
    };
  }
}

/** What a tier that counts its entries and bytes (`size`, `bytes`) holds, as `TierStats.held`. */
export function held(tier: object): Pick<TierStats, 'held'> {
  const { size, bytes } = tier as { size?: unknown; bytes?: unknown };
  return typeof size === 'number' && typeof bytes === 'number'
    ? { held: { entries: size, bytes } }
    : {};
}
