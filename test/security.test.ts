// Redis with a password and an ACL user limited to cimq's own keys, secrets
// kept out of logs and errors, and an emulator that creates nothing outside
// its state directory.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, CimqError } from '../dist/src/index.js';
import { NativePool } from '../dist/src/pool.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { spawnDaemon } from './support/daemon-process.js';

let env: TestEnv;
const user = `cimq-test-${randomBytes(4).toString('hex')}`;
const secret = `s3cret-${randomBytes(8).toString('hex')}`;
let authUrl: string;

beforeAll(async () => {
  env = await createTestEnv('security');
  // Only this test's keys and BullMQ's commands: proves cimq stays in its prefix.
  await env.redis.call('ACL', 'SETUSER', user, 'reset', 'on', `>${secret}`, `~${env.prefix}:*`, '&*', '+@all');
  const u = new URL(env.redisUrl);
  u.username = user;
  u.password = secret;
  authUrl = u.toString();
});
afterAll(async () => {
  await env.redis.call('ACL', 'DELUSER', user);
  await env.dispose();
});

describe('Redis ACL user with a password, via REDIS_URL', () => {
  it('runs the daemon and the client, and never prints the password', async () => {
    const d = spawnDaemon(env, { REDIS_URL: authUrl });
    const client = new CimqClient({ redisUrl: authUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
    try {
      await d.ready;
      const cim = env.cim('acl.cim');
      expect(await client.mount({ containerId: 'acl-1', cimPath: cim })).toMatchObject({ alreadyMounted: false });
      expect(await client.getCimMountPath(cim, 'acl-1')).toMatch(/^\\\\\?\\Volume\{/);
      await client.unmount('acl-1', cim);
    } finally {
      await client.close();
      await d.stop();
    }
    expect(d.output()).toContain(`redis://${user}:***@`);
    expect(d.output()).not.toContain(secret);
  }, 30_000);

  it('a wrong password fails with a clear message that does not echo it', async () => {
    const u = new URL(authUrl);
    u.password = 'wrong-password-123';
    const d = spawnDaemon(env, { REDIS_URL: u.toString() });
    const { code } = await d.exited;
    expect(code).toBe(2);
    expect(d.output()).toMatch(/Redis at redis:\/\/cimq-test-[0-9a-f]+:\*\*\*@\S+ refused the credentials \(WRONGPASS/);
    expect(d.output()).not.toContain('wrong-password-123');
  }, 30_000);
});

describe('the emulator stays inside its state directory', () => {
  it('whatever GUID it is given', async () => {
    const pool = new NativePool({ backend: 'emulator', threads: 2 });
    const cim = env.cim('guid.cim');
    try {
      const guids = fc.sample(fc.uuid(), { numRuns: 200, seed: 7 });
      for (const g of guids) expect((await pool.mount(cim, g, 4)).hresult).toBe(0);
      const inside = readdirSync(env.emulatorRoot);
      expect(inside.sort()).toEqual(guids.map((g) => `Volume{${g.toLowerCase()}}`).sort());
      // Nothing appeared beside the state directory.
      expect(readdirSync(path.dirname(env.emulatorRoot)).sort()).toEqual(['emulator', 'layers']);
      for (const g of guids) expect((await pool.dismount(g)).hresult).toBe(0);
      expect(readdirSync(env.emulatorRoot)).toEqual([]);
    } finally {
      await pool.close();
    }
  });

  it('a cim path that climbs out never reaches the native call', async () => {
    await env.startDaemon();
    const client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
    try {
      const err = await client.mount({ containerId: 'esc', cimPath: `${env.layers}/../../../etc/passwd` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CimqError);
      expect((err as CimqError).code).toBe('INVALID_INPUT');
      expect(env.mountedVolumes()).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
