/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // isolatedModules: transpile only; `npm run build` (tsc --noEmit) type-checks.
  transform: { '^.+\\.tsx?$': ['ts-jest', { isolatedModules: true }] },
  testTimeout: 120000,
};
