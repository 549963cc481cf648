// Hostile producers: payloads put straight on the queue with a plain BullMQ
// Queue. Every one must fail INVALID_INPUT naming the field, make no native
// call, write nothing to the cache, and leave the daemon serving.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { CimqClient, type Daemon } from '../dist/src/index.js';
import { createTestEnv, type PlainProducer, type TestEnv } from './support/env.js';

const RUNS = Number(process.env.CIMQ_FUZZ_RUNS ?? 10_000);
// containerd's identifier rule, as the contract states it: the test's oracle.
const CONTAINERD_ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

let env: TestEnv;
let daemon: Daemon;
let producer: PlainProducer;

beforeAll(async () => {
  env = await createTestEnv('fuzz');
  daemon = await env.startDaemon({ threads: 2, concurrency: 64 });
  producer = await env.plainProducer();
});
afterAll(async () => {
  await producer.close();
  await env.dispose();
});

interface Case { name: string; data: unknown; field: string }

const goodId = fc.stringMatching(/^[a-z0-9]{1,20}$/);
const goodPath = () => fc.stringMatching(/^[a-z0-9]{1,12}\.cim$/).map((f) => `${env.layers}/${f}`);
const badId = fc.oneof(
  fc.string({ maxLength: 100 }).filter((s) => !CONTAINERD_ID.test(s) || s.length > 76),
  fc.stringMatching(/^[a-z0-9]{77,120}$/),
  fc.constantFrom('', '-a', 'a-', 'a..b', 'a/b', 'a\\b', 'a b', 'a\u0000b', '日本', 'a_-b', '../x'),
);
const wrongType = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.object({ maxDepth: 1 }));
const segment = fc.stringMatching(/^[a-z0-9 ]{1,8}$/);
const badPath = () => fc.oneof(
  segment.map((s) => `${s}/a.cim`), // relative
  segment.map((s) => `${env.layers}/../${s}.cim`),
  segment.map((s) => `${env.layers}/./${s}.cim`),
  segment.map((s) => `${env.layers}//${s}.cim`),
  segment.map((s) => `${env.layers}/${s}.cim/`),
  segment.map((s) => `${env.layers}/${s}\u0000.cim`),
  segment.map((s) => `${env.layers}/${s}\ud800.cim`), // unpaired surrogate
  segment.map((s) => `${env.layers}/${s}\udc00x.cim`),
  segment.map((s) => `${env.layers}/${s}\n.cim`),
  segment.map((s) => `\\\\?\\C:\\${s}.cim`),
  segment.map((s) => `\\\\.\\${s}`),
  segment.map((s) => `\\\\server\\share\\${s}.cim`),
  segment.map((s) => `C:\\layers\\${s}.cim`),
  segment.map((s) => `/etc/${s}.cim`), // outside the allowed roots
  segment.map((s) => `${env.layers}x/${s}.cim`),
  fc.integer({ min: 32_768 - env.layers.length, max: 40_000 }).map((n) => `${env.layers}/${'a'.repeat(n)}`),
  fc.constant(''),
);

const cases = (): fc.Arbitrary<Case> => fc.oneof(
  // unknown job names, any data
  fc.record({
    name: fc.string({ maxLength: 30 }).filter((n) => !['mount', 'unmount', 'cleanup'].includes(n)),
    data: fc.anything({ maxDepth: 2 }),
    field: fc.constant('job name'),
  }),
  // not an object at all
  fc.record({ name: fc.constantFrom('mount', 'unmount', 'cleanup'), data: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.anything({ maxDepth: 1 }))), field: fc.constant('payload') }),
  // a bad container id
  fc.record({ name: fc.constantFrom('mount', 'unmount'), data: fc.record({ containerId: badId, cimPath: goodPath() }), field: fc.constant('containerId') }),
  fc.record({ name: fc.constant('cleanup'), data: fc.record({ containerId: fc.oneof(badId, wrongType) }), field: fc.constant('containerId') }),
  // a bad cim path
  fc.record({ name: fc.constantFrom('mount', 'unmount'), data: fc.record({ containerId: goodId, cimPath: fc.oneof(badPath(), wrongType) }), field: fc.constant('cimPath') }),
  // missing fields
  fc.record({ name: fc.constantFrom('mount', 'unmount'), data: fc.record({ containerId: goodId }), field: fc.constant('cimPath') }),
  fc.record({ name: fc.constantFrom('mount', 'unmount', 'cleanup'), data: fc.record({ cimPath: goodPath() }), field: fc.constant('containerId') }),
  // extra fields
  fc.record({
    name: fc.constantFrom('mount', 'unmount'),
    // (undefined would vanish in JSON and leave a valid payload)
    data: fc.tuple(goodId, goodPath(), fc.stringMatching(/^x[a-z]{0,8}$/), fc.anything({ maxDepth: 1 }).filter((v) => v !== undefined))
      .map(([containerId, cimPath, k, v]) => ({ containerId, cimPath, [k]: v })),
    field: fc.constant('Unrecognized key'),
  }),
  // bad flags
  fc.record({
    name: fc.constant('mount'),
    data: fc.record({
      containerId: goodId, cimPath: goodPath(),
      flags: fc.oneof(fc.integer({ min: 0, max: 0xffff }).filter((f) => (f & ~0xbf) !== 0), fc.integer({ max: -1 }), fc.double({ noInteger: true }), fc.string()),
    }),
    field: fc.constant('flags'),
  }),
);

async function failedJobs(n: number): Promise<Job[]> {
  const out: Job[] = [];
  for (let start = 0; start < n; start += 1000) out.push(...(await producer.queue.getFailed(start, start + 999)));
  return out;
}

describe(`${RUNS} hostile payloads and two 10 MB ones`, () => {
  it('all fail INVALID_INPUT naming the field, with no native call and no cache write', async () => {
    const generated = fc.sample(cases(), { numRuns: RUNS, seed: Number(process.env.CIMQ_FUZZ_SEED ?? 20261204) });
    const huge = 'a'.repeat(10 * 1024 * 1024);
    generated.push(
      { name: 'mount', data: { containerId: 'big', cimPath: `${env.layers}/${huge}` }, field: 'cimPath' },
      { name: 'cleanup', data: { containerId: huge }, field: 'containerId' },
    );
    const callsBefore = daemon.pool.calls;
    const ids = new Map<string, Case>();
    for (let i = 0; i < generated.length; i += 500) {
      const chunk = generated.slice(i, i + 500);
      const jobs = await producer.queue.addBulk(chunk.map((c) => ({ name: c.name, data: c.data, opts: { attempts: 3 } })));
      jobs.forEach((j, k) => ids.set(j.id!, chunk[k]!));
    }

    await expect.poll(async () => (await producer.queue.getJobCounts('failed')).failed, { timeout: 120_000, interval: 250 })
      .toBe(generated.length);
    const counts = await producer.queue.getJobCounts('completed', 'waiting', 'active', 'delayed');
    expect(counts).toEqual({ completed: 0, waiting: 0, active: 0, delayed: 0 });

    const failed = await failedJobs(generated.length);
    expect(failed).toHaveLength(generated.length);
    for (const job of failed) {
      const c = ids.get(job.id!)!;
      const reason = job.failedReason;
      expect(reason, JSON.stringify(c).slice(0, 300)).toMatch(/^INVALID_INPUT: /);
      expect(reason, JSON.stringify(c).slice(0, 300)).toContain(c.field === 'job name' ? 'unknown job name' : c.field);
      expect(job.attemptsMade, 'permanent: not retried').toBe(1);
      expect(reason.length, 'the reason does not echo huge input').toBeLessThan(1000);
    }

    expect(daemon.pool.calls - callsBefore, 'native calls').toBe(0);
    expect(env.mountedVolumes()).toEqual([]);
    const cacheKeys = await env.redis.keys(`${env.prefix}:{${env.node}}:{mount,container,pending}:*`);
    const written = [...cacheKeys, ...(await env.redis.keys(`${env.prefix}:{${env.node}}:mounts`))];
    expect(written).toEqual([]);
    console.log(`fuzz: ${generated.length} hostile payloads, all INVALID_INPUT, 0 native calls, 0 cache writes`);
  }, 300_000);

  it('leaves the daemon serving', async () => {
    const client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
    try {
      const cim = env.cim('after-fuzz.cim');
      expect(await client.mount({ containerId: 'after-fuzz', cimPath: cim })).toMatchObject({ alreadyMounted: false });
      await client.unmount('after-fuzz', cim);
      expect(daemon.health().ready).toBe(true);
    } finally {
      await client.close();
    }
  });
});
