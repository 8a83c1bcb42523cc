import type { Clock } from '../clock';
import { integer, milliseconds, onlyKnownKeys, optionNames } from '../options';

export interface CircuitBreakerOptions {
  /**
   * Consecutive failures that open the circuit.
   * @default 5
   */
  failures?: number;
  /**
   * How long an open circuit skips the tier before one probe request is let through, ms.
   * @default 10000
   */
  cooldownMs?: number;
}

const BREAKER_OPTIONS = optionNames<CircuitBreakerOptions>({ failures: true, cooldownMs: true });

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Skips a tier after consecutive failures, so a dead server costs one timeout, not one per
 * request; after `cooldownMs` a single probe goes through, and its outcome closes or re-opens
 * the circuit.
 */
export class CircuitBreaker {
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private consecutive = 0;
  private openUntil = 0;
  private probing = false;
  /** Times the circuit opened. */
  opened = 0;

  constructor(
    options: CircuitBreakerOptions,
    private readonly clock: Clock,
  ) {
    onlyKnownKeys('circuitBreaker', options, BREAKER_OPTIONS);
    this.threshold = integer('circuitBreaker.failures', options.failures, 5, 1);
    this.cooldownMs = milliseconds('circuitBreaker.cooldownMs', options.cooldownMs, 10_000);
  }

  get state(): CircuitState {
    if (this.openUntil === 0) return 'closed';
    return this.probing || this.clock.now() >= this.openUntil ? 'half-open' : 'open';
  }

  /** Whether a request may go to the tier now. In half-open state, only the first caller probes. */
  allow(): boolean {
    if (this.openUntil === 0) return true;
    if (this.probing || this.clock.now() < this.openUntil) return false;
    this.probing = true;
    return true;
  }

  success(): void {
    this.consecutive = 0;
    this.openUntil = 0;
    this.probing = false;
  }

  failure(): void {
    this.consecutive++;
    if (this.probing || this.consecutive >= this.threshold) {
      if (this.openUntil === 0 || this.probing) this.opened++;
      this.openUntil = this.clock.now() + this.cooldownMs;
      this.probing = false;
    }
  }
}
