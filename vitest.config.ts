import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/*.test.ts'],
    globalSetup: ['test/support/redis-setup.ts'],
    // Each file runs in its own process: the emulator reads its knobs from
    // the process environment, so files must not share one.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // One file at a time: on a 2-core machine, files that each run daemons,
    // crash them and restart Redis step on each other's timing when run
    // side by side; the whole suite still takes about two and a half minutes.
    fileParallelism: false,
  },
});
