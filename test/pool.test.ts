// The pool's hand-offs to its threads (real Piscina threads calling the
// emulator through koffi): calls go one per thread until they have shown
// they are short, then a burst of short calls shares hand-offs, each call
// still getting its own answer.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NativePool } from '../dist/src/pool.js';
import { volumeGuid } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';

const THREADS = 4;
let env: TestEnv;
let pool: NativePool;

beforeAll(async () => {
  env = await createTestEnv('pool');
  pool = new NativePool({ backend: 'emulator', threads: THREADS });
});
afterAll(async () => {
  await pool.close();
  await env.dispose();
});

it('sends calls one per hand-off until they have shown they are short', async () => {
  const guids = Array.from({ length: 8 }, (_, i) => volumeGuid(`pool-first-${i}`));
  const before = pool.handOffs;
  const answers = await Promise.all(guids.map((g) => pool.isMounted(g)));
  expect(answers).toEqual(guids.map(() => false));
  expect(pool.handOffs - before).toBe(guids.length);
});

it('batches a burst of short calls, and answers each call with its own result', async () => {
  // Teach the pool that mounts and is-mounted checks on the emulator are short.
  const cim = env.cim('short.cim');
  for (let i = 0; i < 40; i++) {
    await pool.mount(cim, volumeGuid(`pool-learn-${i}`), 0);
    await pool.isMounted(volumeGuid(`pool-learn-${i}`));
  }
  const ids = Array.from({ length: 32 }, (_, i) => `pool-burst-${i}`);
  const before = { calls: pool.calls, handOffs: pool.handOffs };
  // Half of them mounted, half missing images: the answers must not be shuffled.
  const results = await Promise.all(ids.map((id, i) =>
    pool.mount(i % 2 === 0 ? cim : path.join(env.layers, 'missing.cim'), volumeGuid(id), 0)));
  expect(results.map((r) => r.hresult)).toEqual(ids.map((_, i) => (i % 2 === 0 ? 0 : 0x80070002)));
  const checks = await Promise.all(ids.map((id) => pool.isMounted(volumeGuid(id))));
  expect(checks).toEqual(ids.map((_, i) => i % 2 === 0));

  expect(pool.calls - before.calls).toBe(64);
  expect(pool.handOffs - before.handOffs).toBeLessThan(64);
  expect(env.mountedVolumes()).toHaveLength(40 + 16);
});
