/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // tsconfig's isolatedModules makes ts-jest transpile only; `npm run build` (tsc --noEmit) type-checks.
  transform: { '^.+\\.tsx?$': 'ts-jest' },
  testTimeout: 120000,
};
