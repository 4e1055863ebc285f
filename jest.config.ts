import type { Config } from 'jest';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec'],
  testMatch: ['**/*.spec.ts'],
  transform: {
    // Type checking is done once by `npm run typecheck`; the transform only strips types.
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  moduleNameMapper: { '^ipc-link-core$': '<rootDir>/src/index.ts', '^ipc-link-core/nats$': '<rootDir>/src/nats/index.ts' },
  testTimeout: 30_000,
};

export default config;
