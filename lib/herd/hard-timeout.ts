import { setTimeout as sleep } from 'node:timers/promises';
import { CacheTimeoutError } from '../errors';

/**
 * `work`, or a {@link CacheTimeoutError} for `key` once `ms` pass first (`hardTimeout`): the
 * caller is answered, `work` goes on. The timer ends with `work`.
 */
export function withHardTimeout<T>(work: Promise<T>, key: string, ms: number): Promise<T> {
  const ac = new AbortController();
  return Promise.race([
    work.finally(() => ac.abort()),
    sleep(ms, undefined, { signal: ac.signal }).then(
      () => Promise.reject(new CacheTimeoutError(key, ms)),
      () => new Promise<never>(() => undefined),
    ),
  ]);
}
