// Jobs of one container enqueued back to back, in every order, end in the
// same state as the same jobs applied one after another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, CimqError, volumeGuid } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';
import { expectConsistent } from './support/invariant.js';

type Op = 'mount' | 'unmount' | 'cleanup';
const OPS: Op[] = ['mount', 'unmount', 'cleanup'];

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

/** The serial model: what each op returns and whether the cim ends mounted. */
function model(order: Op[], startMounted: boolean): { outcomes: string[]; mounted: boolean } {
  let mounted = startMounted;
  const outcomes = order.map((op) => {
    if (op === 'mount') {
      const o = mounted ? 'already' : 'mounted';
      mounted = true;
      return o;
    }
    if (op === 'unmount') {
      const o = mounted ? 'unmounted' : 'NOT_MOUNTED';
      mounted = false;
      return o;
    }
    const o = mounted ? 'cleaned 1' : 'cleaned 0';
    mounted = false;
    return o;
  });
  return { outcomes, mounted };
}

let env: TestEnv;
let client: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('races');
  await env.startDaemon({ threads: 4, concurrency: 32 });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000, jobOptions: { attempts: 1 } });
});
afterAll(async () => {
  await client.close();
  await env.dispose();
});

describe('every order of mount, unmount and cleanup', () => {
  const cases = permutations(OPS).flatMap((order) => [false, true].map((start) => ({ order, start })));
  it.each(cases)('$order starting mounted=$start', async ({ order, start }) => {
    const id = `race-${order.join('-')}-${start ? 'm' : 'u'}`;
    const cim = env.cim(`${id}.cim`);
    if (start) await client.mount({ containerId: id, cimPath: cim });
    // Twice over, back to back, so that repeats of each op race too.
    const seq = [...order, ...order];
    const results = await Promise.all(seq.map((op) => {
      const p = op === 'mount' ? client.mount({ containerId: id, cimPath: cim })
        : op === 'unmount' ? client.unmount(id, cim) : client.cleanup(id);
      return p.then((r) => {
        if ('alreadyMounted' in r) return r.alreadyMounted ? 'already' : 'mounted';
        if ('unmounted' in r) return `cleaned ${r.unmounted.length}`;
        return 'unmounted';
      }, (err: unknown) => (err instanceof CimqError ? err.code : String(err)));
    }));
    const expected = model(seq, start);
    expect(results).toEqual(expected.outcomes);
    expect(env.mountedVolumes().includes(`Volume{${volumeGuid(id)}}`)).toBe(expected.mounted);
    expect((await client.list({ containerId: id })).length).toBe(expected.mounted ? 1 : 0);
    await expectConsistent(env, client);
  });
});
