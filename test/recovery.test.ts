// Recovery, the node lease, ordering across restarts and graceful shutdown,
// with the daemon as a child process.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid, volumePath } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { spawnDaemon } from './support/daemon-process.js';
import { expectConsistent } from './support/invariant.js';

let env: TestEnv;
let client: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('recovery');
  // Recovery must fit in 15 s with the default lock and stalled-check settings.
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
});
afterAll(async () => {
  await client.close();
  await env.dispose();
});

describe('a daemon killed with SIGKILL inside a blocking native call', () => {
  const TRIALS = 3;
  it(`has its in-flight job completed by the next daemon, with the default lock settings, within 15 s (${TRIALS} trials)`, async () => {
    const times: number[] = [];
    for (let n = 0; n < TRIALS; n++) {
      const id = `kill-${n}`;
      const d1 = spawnDaemon(env, { CIMFS_EMULATOR_LATENCY_MS: '1500' });
      await d1.ready;
      const pending = client.mount({ containerId: id, cimPath: env.cim(`${id}.cim`) });
      pending.catch(() => undefined);
      // Kill while the call blocks inside the emulator.
      await new Promise((r) => setTimeout(r, 500));
      await d1.kill();
      const diedAt = (await d1.exited).at;
      const d2 = spawnDaemon(env);
      try {
        const r = await pending; // the client gives up after 15 s
        times.push(performance.now() - diedAt);
        expect(r).toMatchObject({ containerId: id, alreadyMounted: false, volumePath: volumePath(volumeGuid(id)) });
        await expectConsistent(env, client);
        await client.cleanup(id);
      } finally {
        await d2.stop();
      }
    }
    times.sort((a, b) => a - b);
    console.log(`recovery after SIGKILL mid-call, default settings (lock 5 s, stalled check 3 s), ${TRIALS} trials: ` +
      `min ${times[0]!.toFixed(0)} ms, median ${times[Math.floor(TRIALS / 2)]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms`);
  }, 90_000);
});

describe('start-up reconcile', () => {
  it('drops cached mounts whose volume vanished while no daemon ran (a reboot)', async () => {
    const cim = env.cim('reboot.cim');
    const d1 = spawnDaemon(env);
    await d1.ready;
    await client.mount({ containerId: 'reboot-1', cimPath: cim });
    await d1.stop();
    // The reboot: kernel mounts are gone, Redis still has the entry.
    rmSync(path.join(env.emulatorRoot, `Volume{${volumeGuid('reboot-1')}}`), { recursive: true });
    expect(await client.list({ containerId: 'reboot-1' })).toHaveLength(1);
    const d2 = spawnDaemon(env);
    try {
      await d2.ready;
      expect(d2.output()).toContain('no longer mounted');
      expect(await client.list({ containerId: 'reboot-1' })).toEqual([]);
      expect(await client.mount({ containerId: 'reboot-1', cimPath: cim })).toMatchObject({ alreadyMounted: false });
      await expectConsistent(env, client);
      await client.cleanup('reboot-1');
    } finally {
      await d2.stop();
    }
  }, 30_000);
});

describe('one daemon per node', () => {
  it('a second daemon waits as a standby and takes over when the first stops', async () => {
    const d1 = spawnDaemon(env);
    await d1.ready;
    const d2 = spawnDaemon(env);
    try {
      await expect.poll(() => d2.output(), { timeout: 10_000 }).toContain('waiting as a standby');
      expect(d2.output()).not.toContain('cimq worker ready');
      const first = await client.mount({ containerId: 'lease-1', cimPath: env.cim('lease.cim') });
      // The log line may reach us a moment after the result does.
      await expect.poll(() => d1.output(), { timeout: 5000 }).toContain(first.volumeGuid);
      await d1.stop();
      await d2.ready; // took the node over once the first gave it up
      const second = await client.unmount('lease-1', env.cim('lease.cim'));
      await expect.poll(() => d2.output(), { timeout: 5000 }).toContain('"unmounted"');
      expect(second.volumeGuid).toBe(first.volumeGuid);
    } finally {
      await d1.stop();
      await d2.stop();
    }
  }, 30_000);
});

describe('ordering', () => {
  it('applies one container\'s jobs in order across a daemon crash', async () => {
    const cim = env.cim('order.cim');
    const d1 = spawnDaemon(env, { CIMFS_EMULATOR_LATENCY_MS: '600', CIMQ_LOCK_MS: '1000', CIMQ_STALLED_INTERVAL_MS: '500' });
    await d1.ready;
    const ops = [
      client.mount({ containerId: 'ord-1', cimPath: cim }),
      client.unmount('ord-1', cim),
      client.mount({ containerId: 'ord-1', cimPath: cim }),
      client.cleanup('ord-1'),
      client.mount({ containerId: 'ord-1', cimPath: cim }),
    ];
    ops.forEach((p) => p.catch(() => undefined));
    await new Promise((r) => setTimeout(r, 300)); // the first mount is inside its native call
    await d1.kill();
    const d2 = spawnDaemon(env, { CIMQ_LOCK_MS: '1000', CIMQ_STALLED_INTERVAL_MS: '500' });
    try {
      const r = await Promise.all(ops);
      const vol = volumePath(volumeGuid('ord-1'));
      expect(r[0]).toMatchObject({ alreadyMounted: false });
      expect(r[1]).toMatchObject({ volumePath: vol });
      expect(r[2]).toMatchObject({ alreadyMounted: false });
      expect(r[3]).toEqual({ containerId: 'ord-1', unmounted: [vol] });
      expect(r[4]).toMatchObject({ alreadyMounted: false });
      await expectConsistent(env, client);
      expect(await client.list({ containerId: 'ord-1' })).toHaveLength(1);
      await client.cleanup('ord-1');
    } finally {
      await d2.stop();
    }
  }, 30_000);
});

describe('graceful shutdown', () => {
  it('SIGTERM lets a running native call finish, then exits 0', async () => {
    const d = spawnDaemon(env, { CIMFS_EMULATOR_LATENCY_MS: '1000' });
    await d.ready;
    const pending = client.mount({ containerId: 'term-1', cimPath: env.cim('term.cim') });
    await new Promise((r) => setTimeout(r, 300));
    d.proc.kill('SIGTERM');
    expect(await pending).toMatchObject({ containerId: 'term-1', alreadyMounted: false });
    expect((await d.exited).code).toBe(0);
    expect(d.output()).toContain('shutting down');
    await expectConsistent(env, client);
  }, 30_000);

  it('past CIMQ_SHUTDOWN_TIMEOUT_MS it exits without aborting the call, and the next daemon finishes the job', async () => {
    const d1 = spawnDaemon(env, { CIMFS_EMULATOR_LATENCY_MS: '3000', CIMQ_SHUTDOWN_TIMEOUT_MS: '300', CIMQ_LOCK_MS: '1000', CIMQ_STALLED_INTERVAL_MS: '500' });
    await d1.ready;
    const pending = client.unmount('term-1', env.cim('term.cim'));
    pending.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    d1.proc.kill('SIGTERM');
    expect((await d1.exited).code).toBe(0);
    expect(d1.output()).toContain('shutdown timeout');
    const d2 = spawnDaemon(env, { CIMQ_LOCK_MS: '1000', CIMQ_STALLED_INTERVAL_MS: '500' });
    try {
      expect(await pending).toMatchObject({ containerId: 'term-1' });
      await expectConsistent(env, client);
      expect(await client.list({ containerId: 'term-1' })).toEqual([]);
    } finally {
      await d2.stop();
    }
  }, 30_000);
});
