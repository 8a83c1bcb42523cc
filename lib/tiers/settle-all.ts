/**
 * Awaits every promise, then rethrows the first rejection (in the order of `promises`), so that
 * no work is left running when it rejects.
 */
export async function settleAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  return results.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}
