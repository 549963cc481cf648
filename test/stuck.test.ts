// A native call that does not return: its job fails with a clear error at
// the deadline, the rest of the pool keeps serving, health reports the stuck
// call, and when the call finally returns its outcome is recorded. No
// thread inside native code is ever terminated.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CimqClient, volumeGuid, type Daemon } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { expectConsistent } from './support/invariant.js';

let env: TestEnv;
let daemon: Daemon;
let client: CimqClient;
let release: string;

beforeAll(async () => {
  env = await createTestEnv('stuck');
  daemon = await env.startDaemon({ threads: 2, callDeadlineMs: 400 });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
  release = path.join(env.layers, 'release-the-call');
});
afterAll(async () => {
  if (!existsSync(release)) writeFileSync(release, '');
  delete process.env.CIMFS_EMULATOR_HANG;
  await client.close();
  await env.dispose();
});

async function readyz(): Promise<{ status: number; body: { ready: boolean; reasons: string[] } }> {
  const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[] } };
}

it('fails the job at the deadline, keeps serving, reports the stuck call, and records its late outcome', async () => {
  expect((await readyz()).status).toBe(200);
  const stuckCim = env.cim('stuck.cim');
  process.env.CIMFS_EMULATOR_HANG = `mount:${release}`;
  await expect(client.mount({ containerId: 'stuck-1', cimPath: stuckCim })).rejects.toMatchObject({
    code: 'NATIVE_TIMEOUT',
    message: expect.stringContaining(`cim Mount ${stuckCim} ${volumeGuid('stuck-1')}: the CimFS call did not return within 400 ms`),
  });
  delete process.env.CIMFS_EMULATOR_HANG;

  const h = daemon.health();
  expect(h.ready).toBe(false);
  expect(h.reasons).toContain('1 native call(s) past their deadline');
  expect((h.pool as { stuck: { op: string; volumeGuid: string }[] }).stuck).toEqual([
    expect.objectContaining({ op: 'mount', volumeGuid: volumeGuid('stuck-1') }),
  ]);
  const r = await readyz();
  expect(r.status).toBe(503);
  expect(r.body.reasons).toContain('1 native call(s) past their deadline');
  // The entry stays 'mounting': the call's outcome is not known yet.
  expect(await client.list({ containerId: 'stuck-1' })).toEqual([expect.objectContaining({ state: 'mounting' })]);

  // The other thread still serves.
  const other = env.cim('other.cim');
  expect(await client.mount({ containerId: 'stuck-2', cimPath: other })).toMatchObject({ alreadyMounted: false });
  await client.unmount('stuck-2', other);

  // The call returns: its mount happened, and the cache records it.
  writeFileSync(release, '');
  await expect.poll(async () => (await client.list({ containerId: 'stuck-1' }))[0]?.state, { timeout: 5000 }).toBe('mounted');
  expect(daemon.health().ready).toBe(true);
  expect((await readyz()).status).toBe(200);
  await expectConsistent(env, client);
  await client.cleanup('stuck-1');
});
