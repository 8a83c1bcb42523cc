import type { Config } from 'jest';

// NestJS 12 ships as ES modules only, which Jest loads in its native ESM mode alone: tests run
// as ES modules (Node's --experimental-vm-modules, set by the npm scripts), transformed and
// type-checked by ts-jest.
const tsJest: Config['transform'] = {
  '^.+\\.ts$': [
    'ts-jest',
    {
      tsconfig: '<rootDir>/tsconfig.jest.json',
      useESM: true,
    },
  ],
};

const common: Config = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  transform: tsJest,
  rootDir: __dirname,
};

/**
 * Two projects:
 * - `unit`: no servers, fast.
 * - `integration`: real memcached and Cassandra, started once by the global setup
 *   (or taken from MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS when those are set); it also
 *   runs the reliability suite (test/reliability: short scenarios, long ones with CHAOS=1).
 *   The setup runs only when a test of this project is selected.
 */
const config: Config = {
  testTimeout: 60_000,
  // One test file at a time (two cores; the servers take the other), in one worker process that
  // is replaced once it holds more than the limit after a file: a single process running every
  // suite grows to gigabytes, and its garbage collections then stall the event loop for seconds,
  // long enough for the tests' short server timeouts to fire.
  maxWorkers: 1,
  workerIdleMemoryLimit: '1GB',
  // A timer a dependency leaves behind would keep the run from ever ending. Tests that care
  // assert what they leave open themselves (test/support/open-resources.ts); the run ends when
  // the tests have.
  forceExit: true,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: [
        '<rootDir>/test/integration/**/*.spec.ts',
        '<rootDir>/test/e2e/**/*.spec.ts',
        '<rootDir>/test/reliability/**/*.spec.ts',
      ],
      globalSetup: '<rootDir>/test/harness/global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
    },
  ],
};

export default config;
