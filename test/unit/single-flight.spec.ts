import { SingleFlight } from '../../lib/herd/single-flight';

describe('SingleFlight', () => {
  it('shares one call between concurrent callers of a key', async () => {
    const flight = new SingleFlight();
    let calls = 0;
    const fn = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return calls;
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => flight.do('k', fn)));
    expect(results).toEqual(Array(10).fill(1));
    expect(calls).toBe(1);
    expect(flight.size).toBe(0);
    await flight.do('k', fn);
    expect(calls).toBe(2); // a finished flight is not reused
  });

  it('keeps keys apart and shares failures', async () => {
    const flight = new SingleFlight();
    const boom = () => Promise.reject(new Error('boom'));
    const [a, b] = await Promise.allSettled([flight.do('a', boom), flight.do('a', boom)]);
    expect([a.status, b.status]).toEqual(['rejected', 'rejected']);
    expect(
      await Promise.all([flight.do('x', async () => 1), flight.do('y', async () => 2)]),
    ).toEqual([1, 2]);
    expect(flight.size).toBe(0);
  });

  it('get() tells the call in flight for a key, until it settles', async () => {
    const flight = new SingleFlight();
    const running = flight.do('k', async () => 1);
    expect(flight.get('k')).toBe(running);
    expect(flight.get('other')).toBeUndefined();
    await running;
    expect(flight.get('k')).toBeUndefined();
  });

  it('survives a function that throws synchronously', async () => {
    const flight = new SingleFlight();
    await expect(
      flight.do('k', () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(flight.size).toBe(0);
  });
});
