// Blocking native calls run on pool threads: 8 mounts of 200 ms each, on 8
// threads, overlap instead of queueing, and the main thread's event loop
// keeps turning throughout. A structural check with wide margins, not a
// speed target (the benchmark measures speed).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CimqClient } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';

const LATENCY_MS = 200;
const N = 8;

let env: TestEnv;
let client: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('parallel');
  await env.startDaemon({ threads: N, concurrency: N });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
  // Warm the path (connections, pool threads loading the library) first.
  await client.cleanup('warm-up');
});
afterAll(async () => {
  delete process.env.CIMFS_EMULATOR_LATENCY_MS;
  await client.close();
  await env.dispose();
});

it(`runs ${N} blocking mounts in parallel without stalling the main thread`, async () => {
  process.env.CIMFS_EMULATOR_LATENCY_MS = String(LATENCY_MS);
  const cims = Array.from({ length: N }, (_, i) => env.cim(`p${i}.cim`));
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const start = performance.now();
  const results = await Promise.all(cims.map((cimPath, i) => client.mount({ containerId: `par-${i}`, cimPath })));
  const wall = performance.now() - start;
  h.disable();

  const maxDelayMs = h.max / 1e6;
  const p99DelayMs = h.percentile(99) / 1e6;
  console.log(`parallel mounts: ${N} x ${LATENCY_MS} ms on ${N} threads: wall ${wall.toFixed(0)} ms; ` +
    `main event-loop delay p99 ${p99DelayMs.toFixed(1)} ms, max ${maxDelayMs.toFixed(1)} ms`);

  expect(results.every((r) => r.alreadyMounted === false)).toBe(true);
  expect(env.mountedVolumes()).toHaveLength(N);
  // One after another would take N x 200 ms = 1600 ms; in parallel about 200 ms.
  expect(wall).toBeLessThan(4 * LATENCY_MS);
  expect(wall).toBeGreaterThanOrEqual(LATENCY_MS - 5);
  // A single 200 ms call on the main thread would show up as a 200 ms delay.
  expect(maxDelayMs).toBeLessThan(LATENCY_MS / 2);
});
