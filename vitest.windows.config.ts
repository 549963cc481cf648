import { defineConfig } from 'vitest/config';

// The Windows lane (scripts/windows-lane.mjs): tests under test/windows/
// drive a Windows daemon running under Wine. Not part of `npm test`.
export default defineConfig({
  test: {
    include: ['test/windows/**/*.test.ts'],
    globalSetup: ['test/support/redis-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
