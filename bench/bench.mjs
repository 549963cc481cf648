#!/usr/bin/env node
// cimq benchmark: every scenario runs next to its baseline, interleaved, in
// this one process run, at least 3 times; medians are compared. See the
// README's Performance section. `npm run bench -- --help` for options.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { CimqClient, DEFAULT_JOB_OPTIONS, loadConfig, startDaemon } from '../dist/src/index.js';
import { createLogger } from '../dist/src/log.js';
import { deletePrefix, percentile, privateRedis, summarize, waitFinished } from './support.mjs';

const { values: opt } = parseArgs({
  options: {
    'redis-url': { type: 'string' },
    runs: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '6000' },
    'round-trips': { type: 'string', default: '2000' },
    blocking: { type: 'string', default: '400' },
    batch: { type: 'string', default: '10000' },
    growth: { type: 'string', default: '1000,10000,100000' },
    threads: { type: 'string', default: '8' },
    'idle-seconds': { type: 'string', default: '5' },
    only: { type: 'string' },
    out: { type: 'string', default: 'bench-results.json' },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  console.log(`npm run bench -- [--runs 3] [--jobs 6000] [--round-trips 2000] [--blocking 400] [--batch 10000]
  [--growth 1000,10000,100000] [--threads 8] [--idle-seconds 5]
  [--only throughput,roundtrip,blocking,batch,growth,fleet,memory]
  [--redis-url redis://…] [--out bench-results.json]`);
  process.exit(0);
}
const RUNS = Number(opt.runs);
const THREADS = Number(opt.threads);
const only = opt.only ? new Set(opt.only.split(',')) : null;
const want = (s) => !only || only.has(s);

// The emulator's state on tmpfs: we measure cimq's overhead, not the disk's.
const STATE = path.join(existsShm() ? '/dev/shm' : os.tmpdir(), `cimq-bench-${process.pid}`);
const LAYERS = path.join(STATE, 'layers');
process.env.CIMFS_EMULATOR_ROOT = path.join(STATE, 'emulator');
mkdirSync(LAYERS, { recursive: true });
const CIM = path.join(LAYERS, 'layer.cim');
writeFileSync(CIM, 'cim');

function existsShm() {
  try { return readFileSync('/proc/mounts', 'utf8').includes(' /dev/shm tmpfs'); } catch { return false; }
}

const redisServer = opt['redis-url'] ? null : await privateRedis();
const REDIS_URL = opt['redis-url'] ?? redisServer.url;
const admin = new Redis(REDIS_URL);
const silent = createLogger('silent', { pretty: false });
const results = [];
let seq = 0;

function record(scenario, metric, unit, cimq, baseline, note = '') {
  const c = summarize(cimq);
  const b = baseline ? summarize(baseline) : null;
  const row = {
    scenario, metric, unit, value: c.median, baseline: b ? b.median : null,
    ratio: b && b.median !== 0 ? c.median / b.median : null, runs: c.runs, min: c.min, median: c.median, max: c.max,
    baselineMin: b?.min ?? null, baselineMax: b?.max ?? null, note,
  };
  results.push(row);
  const f = (x) => (x === null ? '—' : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
  console.log(`${scenario.padEnd(22)} ${metric.padEnd(26)} ${f(row.value).padStart(9)} ${unit.padEnd(8)} baseline ${f(row.baseline).padStart(9)}  ratio ${row.ratio === null ? '—' : row.ratio.toFixed(2)}  (runs ${c.runs}, ${f(c.min)}–${f(c.max)}) ${note}`);
}

function conn() {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: null });
}

async function withDaemon(over, fn) {
  const prefix = `bench${++seq}`;
  const node = 'bench';
  const config = loadConfig({ redisUrl: REDIS_URL, prefix, node, backend: 'emulator', httpPort: 'off', threads: THREADS, ...over }, {});
  const daemon = await startDaemon(config, { log: silent });
  const c = conn();
  const queue = new Queue(`{${node}}`, { connection: c, prefix });
  try {
    return await fn({ daemon, queue, prefix, node });
  } finally {
    await daemon.close();
    await queue.close();
    c.disconnect();
    await deletePrefix(admin, prefix);
    rmSync(process.env.CIMFS_EMULATOR_ROOT, { recursive: true, force: true });
  }
}

async function withRawWorker(concurrency, fn) {
  const prefix = `bench${++seq}`;
  const name = '{raw}';
  const c = conn();
  const worker = new Worker(name, async () => ({ ok: true }), { connection: c, prefix, concurrency });
  await worker.waitUntilReady();
  const queue = new Queue(name, { connection: c, prefix });
  try {
    return await fn({ queue, prefix });
  } finally {
    await worker.close();
    await queue.close();
    c.disconnect();
    await deletePrefix(admin, prefix);
  }
}

async function addAll(queue, jobs) {
  for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
}

function mountUnmountJobs(n, tag) {
  const jobs = [];
  for (let i = 0; i < n / 2; i++) {
    const data = { containerId: `${tag}-${i}`, cimPath: CIM };
    jobs.push({ name: 'mount', data }, { name: 'unmount', data });
  }
  return jobs;
}

// ---- throughput ----
/** Redis CPU seconds and commands run (scripts' inner commands included) so far. */
async function redisCost() {
  const [cpu, stats] = await Promise.all([admin.info('cpu'), admin.info('commandstats')]);
  const num = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(cpu)?.[1] ?? NaN);
  let commands = 0;
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'info') commands += Number(m[2]);
  return { cpuS: num('used_cpu_user') + num('used_cpu_sys'), commands };
}

/** Runs `jobs` through, returns jobs/s and per-job costs (Redis commands and CPU, this process's CPU). */
async function timedRun(queue, jobs) {
  const r0 = await redisCost();
  const c0 = process.cpuUsage();
  const t = performance.now();
  await addAll(queue, jobs);
  const c = await waitFinished(queue, jobs.length);
  if (c.failed) throw new Error(`${c.failed} jobs failed`);
  const wall = performance.now() - t;
  const cpu = process.cpuUsage(c0);
  const r1 = await redisCost();
  const n = jobs.length;
  return {
    rate: n / (wall / 1000),
    commands: (r1.commands - r0.commands) / n,
    redisUs: ((r1.cpuS - r0.cpuS) * 1e6) / n,
    nodeUs: (cpu.user + cpu.system) / n,
  };
}

async function throughput() {
  const n = Number(opt.jobs);
  for (const concurrency of [10, 100]) {
    const cimq = [];
    const raw = [];
    for (let r = 0; r < RUNS; r++) {
      raw.push(await withRawWorker(concurrency, ({ queue }) =>
        timedRun(queue, Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { containerId: `r-${i}`, cimPath: CIM } })))));
      cimq.push(await withDaemon({ concurrency }, ({ queue }) => timedRun(queue, mountUnmountJobs(n, `t${r}`))));
    }
    const col = (rows, k) => rows.map((x) => x[k]);
    record('throughput', `jobs/s, concurrency ${concurrency}`, 'jobs/s', col(cimq, 'rate'), col(raw, 'rate'), `${n} mount+unmount jobs vs raw no-op`);
    record('throughput', `Redis commands/job, c=${concurrency}`, 'cmds', col(cimq, 'commands'), col(raw, 'commands'), 'INFO commandstats, scripts\' commands included; producer\'s share included');
    record('throughput', `Redis CPU/job, c=${concurrency}`, 'µs', col(cimq, 'redisUs'), col(raw, 'redisUs'), 'INFO cpu, user+sys');
    record('throughput', `bench process CPU/job, c=${concurrency}`, 'µs', col(cimq, 'nodeUs'), col(raw, 'nodeUs'), 'producer + worker, threads included');
  }
}

// ---- round trip ----
async function roundTrip() {
  const n = Number(opt['round-trips']);
  const p50 = [], p99 = [], rawP50 = [], rawP99 = [];
  for (let r = 0; r < RUNS; r++) {
    await withRawWorker(1, async ({ queue, prefix }) => {
      const ec = conn();
      const events = new QueueEvents('{raw}', { connection: ec, prefix });
      await events.waitUntilReady();
      const lat = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const job = await queue.add('noop', { i });
        await job.waitUntilFinished(events, 10_000);
        lat.push(performance.now() - t);
      }
      await events.close();
      ec.disconnect();
      rawP50.push(percentile(lat, 50));
      rawP99.push(percentile(lat, 99));
    });
    await withDaemon({}, async ({ prefix, node }) => {
      const client = new CimqClient({ redisUrl: REDIS_URL, prefix, node, timeoutMs: 10_000, jobOptions: { removeOnComplete: true } });
      const lat = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await client.mount({ containerId: `rt-${r}-${i}`, cimPath: CIM });
        lat.push(performance.now() - t);
      }
      await client.close();
      p50.push(percentile(lat, 50));
      p99.push(percentile(lat, 99));
    });
  }
  record('round trip', 'add → result p50', 'ms', p50, rawP50, `${n} mounts, one at a time`);
  record('round trip', 'add → result p99', 'ms', p99, rawP99);
}

// ---- blocking hidden ----
async function blocking() {
  const n = Number(opt.blocking);
  const latency = 50;
  const ideal = (n * latency) / 8;
  const wall = [], p99 = [], max = [], syncWall = [], syncP99 = [], syncMax = [];
  for (let r = 0; r < RUNS; r++) {
    process.env.CIMFS_EMULATOR_LATENCY_MS = String(latency);
    try {
      const out = execFileSync(process.execPath, [path.join(import.meta.dirname, 'sync-baseline.mjs'), String(n), path.join(STATE, 'sync')],
        { env: { ...process.env, CIMFS_EMULATOR_ROOT: path.join(STATE, 'sync-emulator') }, encoding: 'utf8' });
      const s = JSON.parse(out);
      syncWall.push(s.wall); syncP99.push(s.p99); syncMax.push(s.max);
      rmSync(path.join(STATE, 'sync-emulator'), { recursive: true, force: true });
      await withDaemon({ threads: 8, concurrency: 16 }, async ({ queue }) => {
        // Start all 8 threads (each loads the library once) before measuring: 8 blocking calls at once.
        await addAll(queue, Array.from({ length: 8 }, (_, i) => ({ name: 'mount', data: { containerId: `warm-${r}-${i}`, cimPath: CIM } })));
        await waitFinished(queue, 8);
        const h = monitorEventLoopDelay({ resolution: 1 });
        h.enable();
        const t = performance.now();
        await addAll(queue, Array.from({ length: n }, (_, i) => ({ name: 'mount', data: { containerId: `bl-${r}-${i}`, cimPath: CIM } })));
        await waitFinished(queue, n + 8);
        wall.push(performance.now() - t);
        h.disable();
        p99.push(h.percentile(99) / 1e6);
        max.push(h.max / 1e6);
      });
    } finally {
      delete process.env.CIMFS_EMULATOR_LATENCY_MS;
    }
  }
  record('blocking hidden', `wall (ideal ${ideal} ms)`, 'ms', wall, syncWall, `${n} x ${latency} ms on 8 threads vs synchronous on the main thread; vs ideal: ${(summarize(wall).median / ideal).toFixed(3)}`);
  record('blocking hidden', 'event-loop delay p99', 'ms', p99, syncP99);
  record('blocking hidden', 'event-loop delay max', 'ms', max, syncMax);
}

// ---- batch cleanup ----
async function populate(queue, ids) {
  const before = (await queue.getJobCounts('completed', 'failed'));
  await addAll(queue, ids.map((id) => ({ name: 'mount', data: { containerId: id, cimPath: CIM }, opts: { removeOnComplete: true } })));
  // removeOnComplete: count the cache instead of completed jobs
  for (;;) {
    const c = await queue.getJobCounts('waiting', 'active', 'failed');
    if (c.failed > before.failed) throw new Error('populate: mounts failed');
    if (c.waiting + c.active === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function batchCleanup() {
  const n = Number(opt.batch);
  const batch = [], seqTimes = [];
  for (let r = 0; r < RUNS; r++) {
    await withDaemon({ concurrency: 100 }, async ({ queue, prefix, node }) => {
      const client = new CimqClient({ redisUrl: REDIS_URL, prefix, node, timeoutMs: 600_000, jobOptions: { removeOnComplete: true } });
      const ids = Array.from({ length: n }, (_, i) => `bc-${r}-${i}`);
      await populate(queue, ids);
      let t = performance.now();
      for (const id of ids) await client.cleanup(id);
      seqTimes.push(performance.now() - t);
      await populate(queue, ids);
      t = performance.now();
      const res = await client.cleanupContainers(ids);
      batch.push(performance.now() - t);
      if (res.unmounted.length !== n) throw new Error(`batch unmounted ${res.unmounted.length} of ${n}`);
      await client.close();
    });
  }
  record('batch cleanup', `${n} containers`, 'ms', batch, seqTimes, `batch job vs one cleanup job at a time; speed-up ${(summarize(seqTimes).median / summarize(batch).median).toFixed(1)}x`);
}

// ---- cost growth ----
async function memoryPerEntry(prefix, node, n) {
  const sample = Math.min(200, n);
  let total = 0;
  for (let i = 0; i < sample; i++) {
    const id = `g-${Math.floor((i * n) / sample)}`;
    total += Number(await admin.memory('USAGE', `${prefix}:{${node}}:mount:${id}_${CIM}`)) || 0;
    total += Number(await admin.memory('USAGE', `${prefix}:{${node}}:container:${id}`)) || 0;
  }
  const index = Number(await admin.memory('USAGE', `${prefix}:{${node}}:mounts`, 'SAMPLES', '0')) || 0;
  return total / sample + index / n;
}

async function growth() {
  const sizes = opt.growth.split(',').map(Number);
  const perEntryMs = new Map(), bytes = new Map();
  for (const n of sizes) {
    const runs = n >= 100_000 ? 1 : RUNS;
    for (let r = 0; r < runs; r++) {
      await withDaemon({ concurrency: 100 }, async ({ queue, prefix, node, daemon }) => {
        const ids = Array.from({ length: n }, (_, i) => `g-${i}`);
        await populate(queue, ids);
        if ((await daemon.cache.stateCounts()).mounted !== n) throw new Error('populate incomplete');
        (bytes.get(n) ?? bytes.set(n, []).get(n)).push(await memoryPerEntry(prefix, node, n));
        const client = new CimqClient({ redisUrl: REDIS_URL, prefix, node, timeoutMs: 600_000 });
        const t = performance.now();
        const res = await client.cleanupAllExcept([]);
        const ms = performance.now() - t;
        if (res.unmounted.length !== n) throw new Error(`cleaned ${res.unmounted.length} of ${n}`);
        (perEntryMs.get(n) ?? perEntryMs.set(n, []).get(n)).push((ms / n) * 1000);
        await client.close();
      });
    }
  }
  const base = sizes[0];
  for (const n of sizes) {
    record('cost growth', `cleanup per mount at ${n}`, 'µs', perEntryMs.get(n), perEntryMs.get(base), n === base ? 'baseline size' : `vs per-mount cost at ${base}`);
  }
  for (const n of sizes) record('cost growth', `Redis bytes per mount at ${n}`, 'bytes', bytes.get(n), bytes.get(base), 'MEMORY USAGE: hash + container set + share of index');
}

// ---- fleet: what one node costs its Redis shard ----
async function fleetCost() {
  const idleS = Number(opt['idle-seconds']);
  const n = 2000;
  const cmds = [], cpu = [], jobBytes = [], eventBytes = [], quietCmds = [], quietCpu = [], conns = [];
  const clients = async () => Number(/connected_clients:(\d+)/.exec(await admin.info('clients'))?.[1] ?? NaN);
  const idleCost = async () => {
    const r0 = await redisCost();
    await new Promise((res) => setTimeout(res, idleS * 1000));
    const r1 = await redisCost();
    return { cmds: (r1.commands - r0.commands) / idleS, cpu: ((r1.cpuS - r0.cpuS) * 1e6) / idleS };
  };
  for (let r = 0; r < RUNS; r++) {
    // Baseline: the same Redis with no daemon (its own housekeeping, our INFO calls).
    const quiet = await idleCost();
    quietCmds.push(quiet.cmds);
    quietCpu.push(quiet.cpu);
    const before = await clients();
    await withDaemon({}, async ({ queue, prefix, node }) => {
      // An idle daemon: stalled-job checks, lock and lease renewals, status, the blocking wait.
      await new Promise((res) => setTimeout(res, 1000));
      conns.push((await clients()) - before - 1); // the bench's own queue connection is not the daemon's
      const busy = await idleCost();
      cmds.push(busy.cmds);
      cpu.push(busy.cpu);
      // What finished jobs leave behind with the client's defaults (kept 1 h, at most 10,000).
      const jobs = Array.from({ length: n }, (_, i) => ({ name: 'mount', data: { containerId: `f-${r}-${i}`, cimPath: CIM }, opts: DEFAULT_JOB_OPTIONS }));
      await addAll(queue, jobs);
      await waitFinished(queue, n);
      let total = 0;
      const ids = await admin.zrange(`${prefix}:{${node}}:completed`, 0, 199);
      for (const id of ids) total += Number(await admin.memory('USAGE', `${prefix}:{${node}}:${id}`)) || 0;
      const zset = Number(await admin.memory('USAGE', `${prefix}:{${node}}:completed`, 'SAMPLES', '0')) || 0;
      jobBytes.push(total / ids.length + zset / n);
      eventBytes.push((Number(await admin.memory('USAGE', `${prefix}:{${node}}:events`, 'SAMPLES', '0')) || 0) / n);
    });
  }
  record('fleet', 'idle daemon: Redis commands/s', 'cmds/s', cmds, quietCmds, `one idle daemon, default settings, over ${idleS} s; baseline: no daemon`);
  record('fleet', 'idle daemon: Redis CPU', 'µs/s', cpu, quietCpu, 'INFO cpu, user+sys; the difference is the daemon\'s share');
  record('fleet', 'idle daemon: Redis connections', 'conns', conns, null, 'INFO clients, with the daemon minus without');
  record('fleet', 'completed job kept', 'bytes', jobBytes, null, 'job hash + completed zset share, client defaults (1 h / 10,000 kept)');
  record('fleet', 'events stream per job', 'bytes', eventBytes, null, `BullMQ events stream (capped at 10,000 entries per node) / ${n} jobs`);
}

// ---- memory ----
function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function memory() {
  const idle = [], loaded = [];
  const n = Number(opt.jobs);
  for (let r = 0; r < RUNS; r++) {
    const prefix = `bench${++seq}`;
    const proc = spawn(process.execPath, [path.join(import.meta.dirname, '../dist/src/cli.js'), 'worker'], {
      // The daemon's defaults (threads, concurrency), as a user runs it.
      env: { ...process.env, REDIS_URL, CIMQ_PREFIX: prefix, CIMQ_NODE: 'mem', CIMQ_HTTP_PORT: 'off', CIMQ_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    const c = conn();
    const queue = new Queue('{mem}', { connection: c, prefix });
    for (let i = 0; i < 300 && !(await c.exists(`${prefix}:{mem}:status`)); i++) await new Promise((res) => setTimeout(res, 50));
    await new Promise((res) => setTimeout(res, 2000));
    idle.push(rssMb(proc.pid));
    await addAll(queue, mountUnmountJobs(n, `m${r}`));
    await waitFinished(queue, n);
    loaded.push(rssMb(proc.pid));
    proc.kill('SIGTERM');
    await new Promise((res) => proc.once('exit', res));
    await queue.close();
    c.disconnect();
    await deletePrefix(admin, prefix);
    rmSync(process.env.CIMFS_EMULATOR_ROOT, { recursive: true, force: true });
  }
  record('memory', 'daemon RSS idle', 'MB', idle, null, 'default settings (4 threads)');
  record('memory', 'daemon RSS after throughput', 'MB', loaded, null, `${n} mount+unmount jobs, default settings`);
}

const started = performance.now();
console.log(`cimq bench: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ` +
  `Redis ${redisServer ? 'private on ' + REDIS_URL : REDIS_URL}, emulator state on ${path.dirname(STATE)}, ${RUNS} runs`);
try {
  if (want('throughput')) await throughput();
  if (want('roundtrip')) await roundTrip();
  if (want('blocking')) await blocking();
  if (want('batch')) await batchCleanup();
  if (want('growth')) await growth();
  if (want('fleet')) await fleetCost();
  if (want('memory')) await memory();
} finally {
  writeFileSync(opt.out, `${JSON.stringify({ machine: { cores: os.cpus().length, node: process.version }, results }, null, 2)}\n`);
  console.log(`wrote ${opt.out}; ${((performance.now() - started) / 1000).toFixed(0)} s`);
  admin.disconnect();
  redisServer?.stop();
  rmSync(STATE, { recursive: true, force: true });
}
