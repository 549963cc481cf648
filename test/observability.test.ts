// What operators see: /metrics values that move when jobs run, /healthz,
// and `cimq status` against a running daemon.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, type Daemon } from '../dist/src/index.js';
import { CLI, createTestEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let daemon: Daemon;
let client: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('observe');
  daemon = await env.startDaemon({ threads: 3 });
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 15_000 });
});
afterAll(async () => {
  await client.close();
  await env.dispose();
});

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

/** The value of one sample, `name{labels} value`; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('/metrics', () => {
  it('moves when jobs run', async () => {
    const before = await scrape();
    const cim = env.cim('m.cim');
    await client.mount({ containerId: 'met-1', cimPath: cim });
    await expect(client.unmount('met-1', env.cim('other.cim'))).rejects.toMatchObject({ code: 'NOT_MOUNTED' });
    // Counters move on BullMQ's completed/failed events, a moment after the result.
    await expect.poll(async () => sample(await scrape(), 'cimq_jobs_total', { job: 'unmount', outcome: 'NOT_MOUNTED' }), { timeout: 5000 })
      .toBe(sample(before, 'cimq_jobs_total', { job: 'unmount', outcome: 'NOT_MOUNTED' }) + 1);
    const after = await scrape();
    expect(sample(after, 'cimq_jobs_total', { job: 'mount', outcome: 'completed' })).toBe(sample(before, 'cimq_jobs_total', { job: 'mount', outcome: 'completed' }) + 1);
    expect(sample(after, 'cimq_job_duration_seconds_count', { job: 'mount' })).toBeGreaterThan(sample(before, 'cimq_job_duration_seconds_count', { job: 'mount' }));
    expect(sample(after, 'cimq_native_call_duration_seconds_count', { op: 'mount', result: 'ok' }))
      .toBe(sample(before, 'cimq_native_call_duration_seconds_count', { op: 'mount', result: 'ok' }) + 1);
    expect(sample(after, 'cimq_cache_entries', { state: 'mounted' })).toBe(1);
    expect(sample(after, 'cimq_pool_threads')).toBe(3);
    expect(sample(after, 'cimq_ready')).toBe(1);
    expect(after).toMatch(/^cimq_queue_jobs\{state="completed"\} \d+$/m);
    expect(after).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
    expect(after).toMatch(/^process_resident_memory_bytes \d/m);
    await client.unmount('met-1', cim);
    await expect.poll(async () => sample(await scrape(), 'cimq_cache_entries', { state: 'mounted' })).toBe(0);
  });

  it('serves /healthz and says where to look for anything else', async () => {
    const h = await fetch(`http://127.0.0.1:${daemon.httpPort}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ ready: true, node: env.node, backend: 'emulator' });
    const nf = await fetch(`http://127.0.0.1:${daemon.httpPort}/nope`);
    expect(nf.status).toBe(404);
    expect(await nf.text()).toContain('/metrics');
  });
});

describe('cimq status', () => {
  it('shows the daemon, the pool, the queue, the cache and the Redis round trip', async () => {
    await client.mount({ containerId: 'st-1', cimPath: env.cim('st.cim') });
    const run = promisify(execFile);
    const text = (await run(process.execPath, [CLI, 'status'], { env: env.childEnv() })).stdout;
    expect(text).toContain(`node        ${env.node}`);
    expect(text).toMatch(/daemon +ready: pid \d+ on /);
    expect(text).toContain('pool        3 threads');
    expect(text).toContain('cache       mounted 1, mounting 0, unmounting 0');
    expect(text).toMatch(/redis +round trip [\d.]+ ms/);
    const json = JSON.parse((await run(process.execPath, [CLI, '--json', 'status'], { env: env.childEnv() })).stdout);
    expect(json).toMatchObject({ node: env.node, daemon: { backend: 'emulator', threads: 3, ready: true }, cache: { mounted: 1 } });
    console.log(`cimq status, as an operator sees it:\n${text}`);
    await client.cleanup('st-1');
  });
});
