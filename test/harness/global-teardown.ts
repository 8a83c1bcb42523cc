import type { StartedServers } from './global-setup';

/** Stops what the global setup started and removes its data; servers named by the user are left alone. */
export default async function globalTeardown(): Promise<void> {
  const started: StartedServers | undefined = globalThis.__tieredCacheServers;
  if (!started) return;
  globalThis.__tieredCacheServers = undefined;
  await Promise.all([
    ...started.memcached.map((n) => n.stop()),
    started.cassandra?.stop(),
    started.redis?.stop(),
  ]);
}
