// Batch cleanup after a crash: many containers in one job, and "every
// container of the node except the live ones", with progress and a summary.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid, volumePath, type BatchProgress } from '../dist/src/index.js';
import { NativePool } from '../dist/src/pool.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { expectConsistent } from './support/invariant.js';

let env: TestEnv;
let client: CimqClient;
let pool: NativePool; // mounts "made by someone else": straight through the emulator, not cached

beforeAll(async () => {
  env = await createTestEnv('batch');
  await env.startDaemon({ threads: 4, concurrency: 64 });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 120_000 });
  pool = new NativePool({ backend: 'emulator', threads: 2 });
});
afterAll(async () => {
  delete process.env.CIMFS_EMULATOR_FAIL;
  await pool.close();
  await client.close();
  await env.dispose();
});

async function mountCached(ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(ids.slice(i, i + 100).map((id) => client.mount({ containerId: id, cimPath: env.cim(`${id}.cim`) })));
  }
}
async function mountUncached(ids: string[]): Promise<void> {
  const cim = env.cim('uncached.cim');
  for (const id of ids) expect((await pool.mount(cim, volumeGuid(id), 4)).hresult).toBe(0);
}
const ids = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}-${i}`);

describe('cleanup-batch', () => {
  it('cleans 1,000 containers (cached, uncached, already clean) past two failures, with progress', async () => {
    const cached = ids('b-cached', 400);
    const uncached = ids('b-uncached', 300);
    const clean = ids('b-clean', 300);
    await mountCached(cached);
    await mountUncached(uncached);
    expect(env.mountedVolumes()).toHaveLength(700);

    const all = [...cached, ...uncached, ...clean].sort(() => Math.random() - 0.5);
    const seen: BatchProgress[] = [];
    process.env.CIMFS_EMULATOR_FAIL = 'dismount:0x80070005:2'; // the first two dismounts: access denied
    const r = await client.cleanupContainers(all, { onProgress: (p) => seen.push(p) });
    delete process.env.CIMFS_EMULATOR_FAIL;

    expect(r.total).toBe(1000);
    expect(r.dryRun).toBe(false);
    expect(r.failures).toHaveLength(2);
    for (const f of r.failures) {
      expect(f).toMatchObject({ code: 'CIMFS_ERROR', hresult: 0x80070005, volumeGuid: volumeGuid(f.containerId!) });
      expect(f.message).toContain('Access is denied. (0x80070005)');
    }
    const failed = new Set(r.failures.map((f) => f.containerId!));
    expect(r.unmounted).toHaveLength(698);
    expect(new Set(r.unmounted.map((u) => u.containerId))).toEqual(new Set([...cached, ...uncached].filter((id) => !failed.has(id))));
    for (const u of r.unmounted) expect(u.volumePath).toBe(volumePath(volumeGuid(u.containerId!)));

    // Progress went up to the end, and counted the failures.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.at(-1)).toEqual({ done: 1000, total: 1000, failed: 2 });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.done).toBeGreaterThanOrEqual(seen[i - 1]!.done);

    // What failed is still mounted, and the cache still says so where it knew.
    expect(env.mountedVolumes()).toEqual([...failed].map((id) => `Volume{${volumeGuid(id)}}`).sort());
    const entries = await client.list();
    expect(entries.map((e) => e.containerId).sort()).toEqual([...failed].filter((id) => id.startsWith('b-cached')).sort());
    expect(entries.every((e) => e.state === 'mounted')).toBe(true);

    // Again, with nothing injected: the rest goes, and it is idempotent.
    const again = await client.cleanupContainers([...failed, ...clean.slice(0, 5)]);
    expect(again.failures).toEqual([]);
    expect(again.unmounted.map((u) => u.containerId).sort()).toEqual([...failed].sort());
    expect(env.mountedVolumes()).toEqual([]);
    await expectConsistent(env, client);
  }, 120_000);
});

describe('cleanup-all-except', () => {
  it('leaves exactly the live containers, and removes volumes no container owns', async () => {
    const cached = ids('a-cached', 10);
    const uncached = ids('a-uncached', 10);
    await mountCached(cached);
    await mountUncached(uncached);
    const strays = [randomUUID(), randomUUID(), randomUUID()];
    const cim = env.cim('stray.cim');
    for (const g of strays) expect((await pool.mount(cim, g, 4)).hresult).toBe(0);
    const live = [...cached.slice(0, 5), ...uncached.slice(0, 3), 'a-live-but-unmounted'];
    const liveVolumes = [...cached.slice(0, 5), ...uncached.slice(0, 3)].map((id) => `Volume{${volumeGuid(id)}}`).sort();

    const plan = await client.cleanupAllExcept(live, { dryRun: true });
    expect(plan.dryRun).toBe(true);
    // 5 cached containers to clean (uncached ones are unknown: their volumes count as strays), 7 + 3 unknown volumes
    expect(plan.unmounted).toHaveLength(5 + 7 + 3);
    expect(env.mountedVolumes()).toHaveLength(23); // nothing changed

    const seen: BatchProgress[] = [];
    const r = await client.cleanupAllExcept(live, { onProgress: (p) => seen.push(p) });
    expect(r.failures).toEqual([]);
    expect(r.unmounted).toHaveLength(15);
    expect(r.unmounted.filter((u) => u.containerId === null)).toHaveLength(10);
    expect(seen.at(-1)).toEqual({ done: 15, total: 15, failed: 0 });
    expect(env.mountedVolumes()).toEqual(liveVolumes);
    expect((await client.list()).map((e) => e.containerId).sort()).toEqual(cached.slice(0, 5).sort());

    // Nothing left to do the second time.
    expect((await client.cleanupAllExcept(live)).unmounted).toEqual([]);
    await client.cleanupContainers(live);
    expect(env.mountedVolumes()).toEqual([]);
  }, 60_000);

  it('rejects a bad id in the list, naming its position', async () => {
    await expect(client.cleanupContainers(['ok-1', 'bad id'])).rejects.toThrow('INVALID_INPUT: cleanup-batch: containerIds.1: must be letters and digits');
    await expect(client.cleanupContainers([])).rejects.toThrow(/INVALID_INPUT: cleanup-batch: containerIds: /);
  });
});
