// End to end: client → BullMQ queue → processor → Piscina → koffi → emulator,
// with the cache in a real Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, CimqError, cacheKeys, volumeGuid, volumePath } from '../dist/src/index.js';
import { NativePool } from '../dist/src/pool.js';
import { createTestEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let client: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('daemon');
  await env.startDaemon();
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
});
afterAll(async () => {
  await client.close();
  await env.dispose();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CimqError);
    return (err as CimqError).code;
  }
  throw new Error('expected the call to fail');
}

describe('mount, path, unmount', () => {
  it('mounts, reports the path from the cache, unmounts, then says not mounted', async () => {
    const cim = env.cim('a.cim');
    const guid = volumeGuid('c-basic');
    const m = await client.mount({ containerId: 'c-basic', cimPath: cim });
    expect(m).toEqual({
      volumePath: volumePath(guid), volumeGuid: guid, containerId: 'c-basic', cimPath: cim, flags: 4, alreadyMounted: false,
    });
    expect(env.mountedVolumes()).toEqual([`Volume{${guid}}`]);
    expect(await client.getCimMountPath(cim, 'c-basic')).toBe(volumePath(guid));

    // The cache entry, as the contract documents it.
    const key = cacheKeys(env.prefix, env.node).mount('c-basic', cim);
    expect(key).toBe(`${env.prefix}:{${env.node}}:mount:c-basic_${cim}`);
    const h = await env.redis.hgetall(key);
    expect(h).toMatchObject({ containerId: 'c-basic', cimPath: cim, volumeGuid: guid, volumePath: volumePath(guid), flags: '4', state: 'mounted' });
    expect(Number(h.mountedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(await env.redis.smembers(`${env.prefix}:{${env.node}}:container:c-basic`)).toEqual([key]);

    const u = await client.unmount('c-basic', cim);
    expect(u).toEqual({ volumePath: volumePath(guid), volumeGuid: guid, containerId: 'c-basic', cimPath: cim });
    expect(env.mountedVolumes()).toEqual([]);
    expect(await env.redis.exists(key)).toBe(0);
    expect(await env.redis.exists(`${env.prefix}:{${env.node}}:container:c-basic`)).toBe(0);
    expect(await codeOf(client.getCimMountPath(cim, 'c-basic'))).toBe('NOT_MOUNTED');
    await expect(client.unmount('c-basic', cim)).rejects.toThrow(`NOT_MOUNTED: cim ${cim} not mounted`);
  });

  it('is idempotent: mounting the same cim again returns the existing volume', async () => {
    const cim = env.cim('idem.cim');
    const first = await client.mount({ containerId: 'c-idem', cimPath: cim, flags: 0x4 });
    const again = await client.mount({ containerId: 'c-idem', cimPath: cim });
    expect(again).toEqual({ ...first, alreadyMounted: true });
    expect(env.mountedVolumes()).toContain(`Volume{${first.volumeGuid}}`);
    await client.unmount('c-idem', cim);
  });

  it('refuses a second cim for a container that already has one mounted: VOLUME_IN_USE', async () => {
    const a = env.cim('in-use-a.cim');
    const b = env.cim('in-use-b.cim');
    await client.mount({ containerId: 'c-busy', cimPath: a });
    await expect(client.mount({ containerId: 'c-busy', cimPath: b })).rejects.toThrow(/^VOLUME_IN_USE: cim Mount .*in-use-b\.cim [0-9a-f-]{36}: container c-busy already has .*in-use-a\.cim mounted/);
    expect(await client.list({ containerId: 'c-busy' })).toHaveLength(1);
    await client.unmount('c-busy', a);
  });

  it('a missing image fails once with IMAGE_NOT_FOUND and leaves no entry', async () => {
    const cim = `${env.layers}/missing.cim`;
    const { queue, events, close } = await env.plainProducer();
    try {
      const job = await queue.add('mount', { containerId: 'c-missing', cimPath: cim }, { attempts: 3, backoff: { type: 'fixed', delay: 10 } });
      await expect(job.waitUntilFinished(events, 15_000)).rejects.toThrow(
        `IMAGE_NOT_FOUND: cim Mount ${cim} ${volumeGuid('c-missing')}: The system cannot find the file specified. (0x80070002)`,
      );
      const after = await queue.getJob(job.id!);
      expect(after?.attemptsMade).toBe(1); // permanent: not retried
      expect(await env.redis.exists(cacheKeys(env.prefix, env.node).mount('c-missing', cim))).toBe(0);
      expect(await client.list({ containerId: 'c-missing' })).toEqual([]);
    } finally {
      await close();
    }
  });

  it('rejects bad input with INVALID_INPUT and writes nothing', async () => {
    const before = (await env.redis.keys(`${env.prefix}:{${env.node}}:mount:*`)).length;
    expect(await codeOf(client.mount({ containerId: 'bad id', cimPath: env.cim('x.cim') }))).toBe('INVALID_INPUT');
    expect(await codeOf(client.mount({ containerId: 'c-roots', cimPath: '/etc/passwd' }))).toBe('INVALID_INPUT');
    expect(await codeOf(client.unmount('c-rel', 'relative.cim'))).toBe('INVALID_INPUT');
    expect((await env.redis.keys(`${env.prefix}:{${env.node}}:mount:*`)).length).toBe(before);
    expect(env.mountedVolumes().some((v) => v.includes(volumeGuid('c-roots')))).toBe(false);
  });
});

describe('cleanup', () => {
  it('unmounts every cached mount of the container and removes the entries', async () => {
    const cim = env.cim('clean.cim');
    const m = await client.mount({ containerId: 'c-clean', cimPath: cim });
    const r = await client.cleanup('c-clean');
    expect(r).toEqual({ containerId: 'c-clean', unmounted: [m.volumePath] });
    expect(env.mountedVolumes()).not.toContain(`Volume{${m.volumeGuid}}`);
    expect(await client.list({ containerId: 'c-clean' })).toEqual([]);
  });

  it('unmounts the deterministic volume a process without our cache left behind', async () => {
    // As if hcsshim (or a cimq whose Redis was lost) had mounted it: straight
    // through the emulator, with the container's hcsshim GUID, nothing cached.
    const guid = volumeGuid('c-orphan');
    const pool = new NativePool({ backend: 'emulator', threads: 1 });
    try {
      expect((await pool.mount(env.cim('orphan.cim'), guid, 4)).hresult).toBe(0);
    } finally {
      await pool.close();
    }
    expect(env.mountedVolumes()).toContain(`Volume{${guid}}`);
    expect(await client.cleanup('c-orphan')).toEqual({ containerId: 'c-orphan', unmounted: [volumePath(guid)] });
    expect(env.mountedVolumes()).not.toContain(`Volume{${guid}}`);
  });

  it('of an unknown container succeeds with nothing unmounted', async () => {
    expect(await client.cleanup('c-never')).toEqual({ containerId: 'c-never', unmounted: [] });
  });
});

describe('the job contract, without our client', () => {
  it('serves a job added by a plain BullMQ Queue', async () => {
    const cim = env.cim('plain.cim');
    const { queue, events, close } = await env.plainProducer();
    try {
      const job = await queue.add('mount', { containerId: 'c-plain', cimPath: cim });
      const result = await job.waitUntilFinished(events, 15_000);
      expect(result).toMatchObject({ containerId: 'c-plain', cimPath: cim, alreadyMounted: false, volumeGuid: volumeGuid('c-plain') });
      const bad = await queue.add('mount', { containerId: 'c-plain', cimPath: cim, extra: true });
      await expect(bad.waitUntilFinished(events, 15_000)).rejects.toThrow(/^INVALID_INPUT: mount: payload: Unrecognized key.*extra/);
      const unknown = await queue.add('format', { containerId: 'c-plain' });
      await expect(unknown.waitUntilFinished(events, 15_000)).rejects.toThrow('INVALID_INPUT: unknown job name "format"');
      const un = await queue.add('unmount', { containerId: 'c-plain', cimPath: cim });
      expect(await un.waitUntilFinished(events, 15_000)).toMatchObject({ containerId: 'c-plain', cimPath: cim });
    } finally {
      await close();
    }
  });

  it('applies one container\'s jobs in order, even when enqueued back to back', async () => {
    const cim = env.cim('order.cim');
    const ops = [
      client.mount({ containerId: 'c-order', cimPath: cim }),
      client.unmount('c-order', cim),
      client.mount({ containerId: 'c-order', cimPath: cim }),
      client.mount({ containerId: 'c-order', cimPath: cim }),
      client.unmount('c-order', cim),
      client.mount({ containerId: 'c-order', cimPath: cim }),
    ];
    const r = await Promise.all(ops);
    expect(r.map((x) => ('alreadyMounted' in x ? (x.alreadyMounted ? 'again' : 'mount') : 'unmount'))).toEqual(
      ['mount', 'unmount', 'mount', 'again', 'unmount', 'mount'],
    );
    expect(env.mountedVolumes()).toContain(`Volume{${volumeGuid('c-order')}}`);
    await client.cleanup('c-order');
  });
});

describe('CimFS failures', () => {
  it('retries a transient HRESULT with backoff, and the retry succeeds', async () => {
    const cim = env.cim('flaky.cim');
    const { queue, events, close } = await env.plainProducer();
    process.env.CIMFS_EMULATOR_FAIL = 'mount:0x8007001F:1'; // first mount call only
    try {
      const job = await queue.add('mount', { containerId: 'c-flaky', cimPath: cim }, { attempts: 3, backoff: { type: 'fixed', delay: 50 } });
      expect(await job.waitUntilFinished(events, 15_000)).toMatchObject({ containerId: 'c-flaky', alreadyMounted: false });
      const done = await queue.getJob(job.id!);
      expect(done?.attemptsMade).toBe(2);
      expect(env.mountedVolumes()).toContain(`Volume{${volumeGuid('c-flaky')}}`);
    } finally {
      delete process.env.CIMFS_EMULATOR_FAIL;
      await close();
    }
    await client.cleanup('c-flaky');
  });

  it('fails a permanent HRESULT once with CIMFS_ERROR, the HRESULT, and no entry', async () => {
    const cim = env.cim('denied.cim');
    process.env.CIMFS_EMULATOR_FAIL = 'mount:0x80070005';
    try {
      const err = await client.mount({ containerId: 'c-denied', cimPath: cim }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CimqError);
      expect(err).toMatchObject({ code: 'CIMFS_ERROR', hresult: 0x80070005 });
      expect((err as Error).message).toBe(`CIMFS_ERROR: cim Mount ${cim} ${volumeGuid('c-denied')}: Access is denied. (0x80070005)`);
    } finally {
      delete process.env.CIMFS_EMULATOR_FAIL;
    }
    expect(await client.list({ containerId: 'c-denied' })).toEqual([]);
  });

  it('keeps the entry mounted when a dismount fails, so the volume is not forgotten', async () => {
    const cim = env.cim('stuck.cim');
    await client.mount({ containerId: 'c-stuck', cimPath: cim });
    process.env.CIMFS_EMULATOR_FAIL = 'dismount:0x80070005';
    try {
      await expect(client.unmount('c-stuck', cim)).rejects.toMatchObject({ code: 'CIMFS_ERROR', hresult: 0x80070005 });
    } finally {
      delete process.env.CIMFS_EMULATOR_FAIL;
    }
    expect(await client.list({ containerId: 'c-stuck' })).toEqual([expect.objectContaining({ state: 'mounted' })]);
    expect(await client.getCimMountPath(cim, 'c-stuck')).toBe(volumePath(volumeGuid('c-stuck')));
    await client.unmount('c-stuck', cim);
    expect(env.mountedVolumes()).not.toContain(`Volume{${volumeGuid('c-stuck')}}`);
  });
});
