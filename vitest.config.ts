import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/redis-setup.ts'],
    // Each file runs in its own process: the emulator reads its knobs from
    // the process environment, so files must not share one.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // A 2-core machine: two files at a time keeps timing-sensitive checks honest.
    maxWorkers: 2,
  },
});
