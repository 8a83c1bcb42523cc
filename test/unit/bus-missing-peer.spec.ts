import { jest } from '@jest/globals';

/**
 * Without ioredis installed, a Redis bus fails at connect() with an error naming the package (the
 * package is an optional peer dependency). Here its import is made to fail as a missing package's
 * would.
 */
jest.unstable_mockModule('ioredis', () => {
  throw Object.assign(new Error("Cannot find module 'ioredis'"), { code: 'MODULE_NOT_FOUND' });
});

it('a redis bus without ioredis: connect() rejects with E_MISSING_PEER naming the package', async () => {
  // Loaded after the mock above (a static import would load ioredis's importer first).
  const LIB = '../../lib';
  const { createTieredStore } = (await import(LIB)) as typeof import('../../lib');
  const store = createTieredStore({ bus: { type: 'redis', url: 'redis://127.0.0.1:1' } });
  const err = await store.connect().catch((e: unknown) => e);
  expect(err).toMatchObject({
    code: 'E_MISSING_PEER',
    message: expect.stringContaining('npm install ioredis'),
  });
  await store.disconnect();
});
