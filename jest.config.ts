import type { Config } from 'jest';

const tsJest: Config['transform'] = {
  // ts-jest type-checks every file. 151002 only says that the node20 module kind is "hybrid";
  // it emits CommonJS here, which ts-jest handles.
  '^.+\\.ts$': [
    'ts-jest',
    { tsconfig: '<rootDir>/tsconfig.json', diagnostics: { ignoreCodes: [151002] } },
  ],
};

const common: Config = {
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'json'],
  transform: tsJest,
  rootDir: __dirname,
};

/**
 * Two projects:
 * - `unit`: no servers, fast.
 * - `integration`: real memcached and Cassandra, started once by the global setup
 *   (or taken from MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS when those are set).
 *   The setup runs only when a test of this project is selected.
 */
const config: Config = {
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.spec.ts', '<rootDir>/test/e2e/**/*.spec.ts'],
      globalSetup: '<rootDir>/test/harness/global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
    },
  ],
};

export default config;
