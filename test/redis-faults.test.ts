// Redis faults while jobs are in flight: connections killed, and Redis
// restarted. The daemon reconnects, loses no job, mounts nothing twice, and
// reports not-ready while Redis is away. Runs against a private redis-server
// with an append-only file, so that a restart keeps the queue, as in production.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid, type Daemon } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { expectConsistent } from './support/invariant.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';

let dataDir: string;
let redis: RedisServer;
let env: TestEnv;
let daemon: Daemon;
let client: CimqClient;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'cimq-redis-'));
  redis = await startRedisServer(['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dataDir]);
  env = await createTestEnv('redisfault', { redisUrl: redis.url });
  daemon = await env.startDaemon({ threads: 4, concurrency: 16 });
  client = new CimqClient({ redisUrl: redis.url, prefix: env.prefix, node: env.node, timeoutMs: 30_000 });
});
afterAll(async () => {
  delete process.env.CIMFS_EMULATOR_LATENCY_MS;
  await client.close();
  await env.dispose();
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

function mounts(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({ containerId: `${prefix}-${i}`, cimPath: env.cim(`${prefix}-${i}.cim`) }));
}

describe('Redis faults with jobs in flight', () => {
  it('survives its connections being killed (CLIENT KILL)', async () => {
    process.env.CIMFS_EMULATOR_LATENCY_MS = '300';
    const reqs = mounts('kill', 10);
    const pending = reqs.map((r) => client.mount(r));
    await new Promise((r) => setTimeout(r, 150));
    const killed = await env.redis.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    expect(Number(killed)).toBeGreaterThan(0);
    const results = await Promise.all(pending);
    delete process.env.CIMFS_EMULATOR_LATENCY_MS;
    expect(results.every((r) => r.alreadyMounted === false)).toBe(true);
    expect(env.mountedVolumes()).toEqual(reqs.map((r) => `Volume{${volumeGuid(r.containerId)}}`).sort());
    await expectConsistent(env, client);
    await expect.poll(() => daemon.health().ready, { timeout: 10_000 }).toBe(true);
  }, 60_000);

  it('survives a Redis restart, reporting not-ready while it is away', async () => {
    process.env.CIMFS_EMULATOR_LATENCY_MS = '500';
    const reqs = mounts('restart', 8);
    const pending = reqs.map((r) => client.mount(r));
    pending.forEach((p) => p.catch(() => undefined));
    await new Promise((r) => setTimeout(r, 200));
    await redis.stop();
    await expect.poll(() => daemon.health().ready, { timeout: 5000 }).toBe(false);
    expect(daemon.health().reasons.join()).toMatch(/redis/);
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
    expect(res.status).toBe(503);
    await new Promise((r) => setTimeout(r, 1000));
    await redis.start();
    const results = await Promise.all(pending);
    delete process.env.CIMFS_EMULATOR_LATENCY_MS;
    expect(results.map((r) => r.containerId)).toEqual(reqs.map((r) => r.containerId));
    expect(env.mountedVolumes()).toEqual(
      [...mounts('kill', 10), ...reqs].map((r) => `Volume{${volumeGuid(r.containerId)}}`).sort(),
    );
    await expectConsistent(env, client);
    await expect.poll(() => daemon.health().ready, { timeout: 10_000 }).toBe(true);
    // Still serving.
    const extra = env.cim('after-restart.cim');
    await client.mount({ containerId: 'after-restart', cimPath: extra });
    await client.cleanup('after-restart');
  }, 60_000);
});
