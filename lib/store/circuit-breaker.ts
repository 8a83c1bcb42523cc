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
  /**
   * Consecutive timeouts that open the circuit (a tier error saying `timedOut`, see
   * `TierFailure`). A timeout costs a caller the tier's whole timeout, so by default the first
   * one opens it: a hung server then costs one timeout per `cooldownMs`, not one per request.
   * @default 1
   */
  timeouts?: number;
}

const BREAKER_OPTIONS = optionNames<CircuitBreakerOptions>({
  failures: true,
  cooldownMs: true,
  timeouts: true,
});

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Skips a tier after consecutive failures, so a dead server costs one timeout, not one per
 * request; after `cooldownMs` a single probe goes through, and its outcome closes or re-opens
 * the circuit.
 */
export class CircuitBreaker {
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly timeoutThreshold: number;
  private consecutive = 0;
  private consecutiveTimeouts = 0;
  private openUntil = 0;
  private probing = false;
  /** Times the circuit opened. */
  opened = 0;

  /** @param onChange told when the circuit opens, and when it closes again. */
  constructor(
    options: CircuitBreakerOptions,
    private readonly clock: Clock,
    private readonly onChange: (state: 'open' | 'closed') => void = () => undefined,
  ) {
    onlyKnownKeys('circuitBreaker', options, BREAKER_OPTIONS);
    this.threshold = integer('circuitBreaker.failures', options.failures, 5, 1);
    this.cooldownMs = milliseconds('circuitBreaker.cooldownMs', options.cooldownMs, 10_000);
    this.timeoutThreshold = integer('circuitBreaker.timeouts', options.timeouts, 1, 1);
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
    this.consecutiveTimeouts = 0;
    this.probing = false;
    if (this.openUntil === 0) return;
    this.openUntil = 0;
    this.onChange('closed');
  }

  /**
   * The tier answered, though not with a success of its own: it refused a value for its size, or
   * one of its several servers failed. Changes no count, but ends a probe as a success (the tier
   * is there), so that the circuit never stays half-open with nobody left to probe.
   */
  answered(): void {
    if (this.probing) this.success();
  }

  /** Counts a failure; `timedOut`: the tier did not answer in time (see `timeouts`). */
  failure(timedOut = false): void {
    this.consecutive++;
    if (timedOut) this.consecutiveTimeouts++;
    if (
      this.probing ||
      this.consecutive >= this.threshold ||
      this.consecutiveTimeouts >= this.timeoutThreshold
    ) {
      const opens = this.openUntil === 0 || this.probing;
      this.openUntil = this.clock.now() + this.cooldownMs;
      this.probing = false;
      if (opens) {
        this.opened++;
        this.onChange('open');
      }
    }
  }
}
