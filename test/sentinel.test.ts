// Redis behind Sentinel (a private master and a Sentinel, started here), and
// the errors a user meets when the Cluster or Sentinel settings are wrong.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid } from '../dist/src/index.js';
import { freePort, redisAnswers, startRedisServer, type RedisServer } from '../scripts/redis-server.mjs';
import { createTestEnv, runCli, type TestEnv } from './support/env.js';

let env: TestEnv;
let master: RedisServer;
let sentinel: ChildProcess;
let sentinels: string;
let dir: string;

const cimq = (extraEnv: Record<string, string>, ...args: string[]) => runCli(env, extraEnv, ...args);

beforeAll(async () => {
  env = await createTestEnv('sentinel');
  master = await startRedisServer(['--appendonly', 'no']);
  dir = mkdtempSync(path.join(tmpdir(), 'cimq-sentinel-'));
  const port = await freePort();
  const conf = path.join(dir, 'sentinel.conf');
  // Sentinel rewrites its own file, so it gets one of its own.
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor cimq-master 127.0.0.1 ${master.port} 1\n`);
  sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  sentinels = `127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await redisAnswers(`redis://${sentinels}`)); i++) await new Promise((r) => setTimeout(r, 50));
});

afterAll(async () => {
  sentinel?.kill('SIGKILL');
  await master?.stop();
  rmSync(dir, { recursive: true, force: true });
  await env?.dispose();
});

describe('Redis behind Sentinel', () => {
  it('runs the daemon, the client and the CLI against the master the Sentinel names', async () => {
    const daemon = await env.startDaemon({ redisSentinels: sentinels, redisSentinelName: 'cimq-master' });
    const client = new CimqClient({ redisSentinels: sentinels, redisSentinelName: 'cimq-master', prefix: env.prefix, node: env.node });
    try {
      const cimPath = env.cim('sentinel.cim');
      await expect(client.mount({ containerId: 'sent-1', cimPath })).resolves.toMatchObject({ volumeGuid: volumeGuid('sent-1') });
      // The cache is on that master, not on the test's usual Redis.
      const direct = new Redis(master.url);
      expect(await direct.hget(daemon.cache.keys.mount('sent-1', cimPath), 'state')).toBe('mounted');
      direct.disconnect();
      expect(await env.redis.exists(daemon.cache.keys.mount('sent-1', cimPath))).toBe(0);

      const status = await cimq({}, 'status', '--redis-sentinels', sentinels, '--redis-sentinel-name', 'cimq-master', '--json');
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ node: env.node, cache: { mounted: 1 } });
    } finally {
      await client.close();
      await daemon.close();
    }
  });
});

describe('wrong Cluster or Sentinel settings', () => {
  it('says which setting is malformed', async () => {
    const r = await cimq({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,nonsense' }, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('REDIS_CLUSTER_NODES must be comma-separated host:port pairs');
    expect(r.stderr).toContain('"nonsense"');
  });

  it('refuses both at once', async () => {
    const r = await cimq({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_SENTINELS: '127.0.0.1:26379' }, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('set REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both');
  });

  it('names the seed nodes and how to check them when no Cluster answers', async () => {
    const r = await cimq({ REDIS_CLUSTER_NODES: '127.0.0.1:1' }, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot reach Redis Cluster 127.0.0.1:1');
    expect(r.stderr).toContain('redis-cli --cluster check');
  });

  it('uses REDIS_SENTINEL_PASSWORD for Sentinels that require one, and says so when it is missing', async () => {
    const port = await freePort();
    const conf = path.join(dir, 'sentinel-auth.conf');
    writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nrequirepass s3cret-sentinel\nsentinel monitor cimq-master 127.0.0.1 ${master.port} 1\n`);
    const guarded = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    try {
      const url = `redis://:s3cret-sentinel@127.0.0.1:${port}`;
      for (let i = 0; i < 100 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 50));
      const settings = { REDIS_SENTINELS: `127.0.0.1:${port}`, REDIS_SENTINEL_NAME: 'cimq-master' };
      const refused = await cimq(settings, 'status');
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('set REDIS_SENTINEL_PASSWORD');
      const ok = await cimq({ ...settings, REDIS_SENTINEL_PASSWORD: 's3cret-sentinel' }, 'status', '--json');
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ node: env.node });
      expect(ok.stdout + ok.stderr).not.toContain('s3cret-sentinel');
    } finally {
      guarded.kill('SIGKILL');
    }
  });

  it('names the Sentinels and the master when the Sentinel does not know it', async () => {
    const r = await cimq({ REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: 'no-such-master' }, 'status');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot reach Redis master "no-such-master" via Sentinels ${sentinels}`);
    expect(r.stderr).toContain('REDIS_SENTINEL_NAME');
  });
});
