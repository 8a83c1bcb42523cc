import { performance } from 'node:perf_hooks';

/**
 * What the callers joining a flight wait for besides the flight: its factory call running past
 * `lockTimeout` (see `ReadThrough`). Its timer runs only while a factory call runs and someone
 * waits: no timer outlives the call.
 */
export class OverdueWait {
  /** `performance.now()` when the flight's factory call began; unset while none runs. */
  private started: number | undefined;
  private overdue: Promise<void> | undefined;
  private fire: (() => void) | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly lockTimeout: number) {}

  /** The flight's factory call began, at `performance.now()` = `started`. */
  began(started: number): void {
    this.started = started;
    if (this.fire !== undefined) this.arm();
  }

  /** The flight's factory call ended, or the flight did. */
  ended(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.started = undefined;
  }

  /** Resolves once a factory call of the flight has run `lockTimeout` (never when none does). */
  passed(): Promise<void> {
    if (this.overdue === undefined) {
      this.overdue = new Promise<void>((resolve) => (this.fire = resolve));
      if (this.started !== undefined) this.arm();
    }
    return this.overdue;
  }

  private arm(): void {
    clearTimeout(this.timer);
    const left = this.started! + this.lockTimeout - performance.now();
    this.timer = setTimeout(this.fire!, Math.max(0, left));
  }
}
