import { CircuitBreaker } from '../../lib/store/circuit-breaker';
import { ManualClock } from '../support/manual-clock';

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, probes once after the cooldown, closes on success', () => {
    const clock = new ManualClock();
    const breaker = new CircuitBreaker({ failures: 3, cooldownMs: 1000 }, clock);
    breaker.failure();
    breaker.success(); // a success resets the count
    breaker.failure();
    breaker.failure();
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    clock.advance(999);
    expect(breaker.allow()).toBe(false);
    clock.advance(1);
    expect(breaker.allow()).toBe(true); // the probe
    expect(breaker.allow()).toBe(false); // only one
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.opened).toBe(1);
  });

  it('re-opens at once when the probe fails', () => {
    const clock = new ManualClock();
    const breaker = new CircuitBreaker({ failures: 1, cooldownMs: 500 }, clock);
    breaker.failure();
    clock.advance(500);
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    expect(breaker.opened).toBe(2);
  });

  it('rejects bad options', () => {
    expect(() => new CircuitBreaker({ failures: 0 }, new ManualClock())).toThrow(/failures: 0/);
    expect(() => new CircuitBreaker({ cooldownMs: -1 }, new ManualClock())).toThrow(
      /cooldownMs: -1/,
    );
  });

  it('an answer that is no failure (a refused size, one server of several) ends a probe as a success', () => {
    const clock = new ManualClock();
    const breaker = new CircuitBreaker({ failures: 1, cooldownMs: 1000 }, clock);
    breaker.failure();
    breaker.answered(); // not probing: changes nothing
    expect(breaker.state).toBe('open');
    clock.advance(1000);
    expect(breaker.allow()).toBe(true); // the probe
    breaker.answered();
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });

  it('opens on the first timeout by default, or after `timeouts` of them', () => {
    const clock = new ManualClock();
    const first = new CircuitBreaker({}, clock);
    first.failure(true);
    expect(first.state).toBe('open');
    const third = new CircuitBreaker({ timeouts: 3, failures: 10 }, clock);
    third.failure(true);
    third.failure(true);
    expect(third.state).toBe('closed');
    third.failure(true);
    expect(third.state).toBe('open');
  });
});
