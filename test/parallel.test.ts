// Blocking native calls run on pool threads, side by side, and the main
// thread keeps serving while they block. Checked without timings: the
// emulator holds each mount call until a release file appears and marks every
// call it holds, so the test sees how many block at once, and asks the
// daemon's main thread for work meanwhile (the benchmark measures speed).
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CimqClient } from '../dist/src/index.js';
import type { Daemon } from '../dist/src/daemon.js';
import { createTestEnv, type TestEnv } from './support/env.js';

const N = 8;

let env: TestEnv;
let daemon: Daemon;
let client: CimqClient;
let release: string;

beforeAll(async () => {
  env = await createTestEnv('parallel');
  daemon = await env.startDaemon({ threads: N, concurrency: N + 2, httpPort: 0 });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 30_000 });
  // Warm the path (connections, pool threads loading the library) first.
  await client.cleanup('warm-up');
  release = path.join(env.layers, 'release-the-mounts');
});
afterAll(async () => {
  if (release && !existsSync(release)) writeFileSync(release, '');
  delete process.env.CIMFS_EMULATOR_HANG;
  await client.close();
  await env.dispose();
});

function blockedCalls(): number {
  const base = path.basename(release);
  return readdirSync(path.dirname(release)).filter((f) => f.startsWith(`${base}.waiting.`)).length;
}

async function until(what: () => string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!ok()) throw new Error(`gave up waiting: ${what()}`);
}

it(`runs ${N} blocking mounts at once, each on its own thread, while the main thread serves`, async () => {
  process.env.CIMFS_EMULATOR_HANG = `mount:${release}`;
  const cims = Array.from({ length: N }, (_, i) => env.cim(`p${i}.cim`));
  const mounts = Promise.all(cims.map((cimPath, i) => client.mount({ containerId: `par-${i}`, cimPath })));

  // All N calls are inside the library at the same time: none queued behind another.
  await until(() => `${N} calls blocked at once (saw ${blockedCalls()}; pool ${JSON.stringify(daemon.health().pool)}; volumes ${env.mountedVolumes().length})`, () => blockedCalls() === N);
  expect(daemon.health().pool).toMatchObject({ threads: N, busy: N });

  // Meanwhile the main thread answers HTTP and runs a job that needs no native call.
  const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/healthz`);
  expect(res.status).toBe(200);
  await expect(client.unmount('not-mounted', env.cim('none.cim'))).rejects.toMatchObject({ code: 'NOT_MOUNTED' });
  expect(blockedCalls()).toBe(N);

  writeFileSync(release, '');
  const results = await mounts;
  delete process.env.CIMFS_EMULATOR_HANG;
  rmSync(release);

  expect(results.every((r) => r.alreadyMounted === false)).toBe(true);
  expect(env.mountedVolumes()).toHaveLength(N);
  expect(blockedCalls()).toBe(0);
});
