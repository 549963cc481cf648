// The crash matrix: for every crash point of the emulator x every operation,
// a daemon (a child process) dies at that point with a job in flight; a new
// daemon starts for the node; the job must complete with its effect present
// exactly once, and the emulator and the cache must agree, with nothing left
// half-done. The CimFS emulator's CIMFS_EMULATOR_CRASH aborts the process
// right before or after the native effect, inside the native call.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, volumeGuid, volumePath } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { spawnDaemon } from './support/daemon-process.js';
import { expectConsistent } from './support/invariant.js';

const POINTS = ['before-mount', 'after-mount', 'before-dismount', 'after-dismount'] as const;
const OPS = ['mount', 'unmount', 'cleanup'] as const;
const TRIALS = Number(process.env.CIMQ_CRASH_TRIALS ?? 3);
// Short locks and lease so a trial takes seconds; the defaults are 5 s / 3 s / 5 s.
const FAST = { CIMQ_LOCK_MS: '1000', CIMQ_STALLED_INTERVAL_MS: '500', CIMQ_LEASE_MS: '1500' };

let env: TestEnv;
let client: CimqClient;
const recoveries: number[] = [];
let crashes = 0;

beforeAll(async () => {
  env = await createTestEnv('crash');
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 30_000 });
});
afterAll(async () => {
  const sorted = [...recoveries].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  console.log(`crash matrix: ${POINTS.length * OPS.length * TRIALS} trials, ${crashes} daemon crashes; ` +
    `recovery after a crash (death → job result): min ${sorted[0]?.toFixed(0)} ms, median ${median.toFixed(0)} ms, ` +
    `max ${sorted.at(-1)?.toFixed(0)} ms (lock ${FAST.CIMQ_LOCK_MS} ms, stalled check ${FAST.CIMQ_STALLED_INTERVAL_MS} ms)`);
  await client.close();
  await env.dispose();
});

async function trial(point: (typeof POINTS)[number], op: (typeof OPS)[number], n: number): Promise<void> {
  const id = `cm-${op}-${point}-${n}`;
  const cim = env.cim(`${id}.cim`);
  const vol = volumePath(volumeGuid(id));

  if (op !== 'mount') {
    // The mount to undo, made and acknowledged by a daemon that does not crash.
    const d0 = spawnDaemon(env, FAST);
    await d0.ready;
    await client.mount({ containerId: id, cimPath: cim });
    await d0.stop();
  }

  const d1 = spawnDaemon(env, { ...FAST, CIMFS_EMULATOR_CRASH: point });
  await d1.ready;
  const pending = op === 'mount' ? client.mount({ containerId: id, cimPath: cim })
    : op === 'unmount' ? client.unmount(id, cim)
    : client.cleanup(id);
  pending.catch(() => undefined);
  const first = await Promise.race([d1.exited.then(() => 'died' as const), pending.then(() => 'done' as const)]);
  if (first === 'died') {
    crashes++;
    expect((await d1.exited).signal, d1.output()).toBe('SIGABRT');
  } else {
    await d1.kill(); // the op does not reach this crash point: kill the daemon anyway
  }
  const diedAt = (await d1.exited).at;

  const d2 = spawnDaemon(env, FAST);
  try {
    const result = await pending;
    if (first === 'died') recoveries.push(performance.now() - diedAt);
    if (op === 'mount') {
      expect(result).toMatchObject({ containerId: id, cimPath: cim, volumePath: vol, alreadyMounted: false });
      expect(env.mountedVolumes()).toContain(`Volume{${volumeGuid(id)}}`);
      expect(await client.getMountPath(cim, id)).toBe(vol);
    } else if (op === 'unmount') {
      expect(result).toEqual({ containerId: id, cimPath: cim, volumePath: vol, volumeGuid: volumeGuid(id) });
    } else {
      expect(result).toEqual({ containerId: id, unmounted: [vol] });
    }
    if (op !== 'mount') {
      expect(env.mountedVolumes()).not.toContain(`Volume{${volumeGuid(id)}}`);
      expect(await client.list({ containerId: id })).toEqual([]);
    }
    await expectConsistent(env, client);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- first daemon ---\n${d1.output()}\n--- second daemon ---\n${d2.output()}`);
  } finally {
    await d2.stop();
  }
}

describe('crash matrix', () => {
  for (const op of OPS) {
    for (const point of POINTS) {
      it(`${op} x ${point}: ${TRIALS} trials`, async () => {
        for (let n = 0; n < TRIALS; n++) await trial(point, op, n);
      }, 120_000);
    }
  }
});
