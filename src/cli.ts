#!/usr/bin/env node
// The cimq command: `cimq worker` runs the node daemon; the other commands
// are a client of it (or read the cache directly, for `path` and `ls`).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import Table from 'cli-table3';
import { CimqClient } from './client.js';
import { ConfigError, formatHostPorts, int, loadConfig, type ConfigOverrides } from './config.js';
import { startDaemon } from './daemon.js';
import { CimqError } from './errors.js';
import { createLogger } from './log.js';
import { probe, RedisUnreachableError } from './redis.js';
import { startTracing } from './tracing.js';
import type { BatchCleanupResult, BatchProgress, MountEntry } from './contract.js';

const { SingleBar, Presets } = cliProgress;

interface GlobalOpts {
  redisUrl?: string;
  redisClusterNodes?: string;
  redisSentinels?: string;
  redisSentinelName?: string;
  node?: string;
  prefix?: string;
  timeoutMs?: string;
  json?: boolean;
}

const program = new Command();
program
  .name('cimq')
  .description('Mount Windows CimFS container layers through a Redis-backed queue, safely across crashes')
  .option('--redis-url <url>', 'Redis URL (env REDIS_URL, default redis://127.0.0.1:6379)')
  .option('--redis-cluster-nodes <list>', 'Redis Cluster seed nodes host:port,... instead of the URL\'s host (env REDIS_CLUSTER_NODES)')
  .option('--redis-sentinels <list>', 'Redis Sentinels host:port,... instead of the URL\'s host (env REDIS_SENTINELS)')
  .option('--redis-sentinel-name <name>', 'the master\'s name at the Sentinels (env REDIS_SENTINEL_NAME, default mymaster)')
  .option('--node <name>', 'node whose queue and cache to use (env CIMQ_NODE, default the host name)')
  .option('--prefix <prefix>', 'Redis key prefix (env CIMQ_PREFIX, default cimq)')
  .option('--timeout-ms <ms>', 'how long to wait for a job result (env CIMQ_TIMEOUT_MS, default 60000)')
  .option('--json', 'print JSON instead of text')
  .showHelpAfterError();

function overrides(extra: ConfigOverrides = {}): ConfigOverrides {
  const g = program.opts<GlobalOpts>();
  const o: ConfigOverrides = { ...extra };
  if (g.redisUrl) o.redisUrl = g.redisUrl;
  if (g.redisClusterNodes) o.redisClusterNodes = g.redisClusterNodes;
  if (g.redisSentinels) o.redisSentinels = g.redisSentinels;
  if (g.redisSentinelName) o.redisSentinelName = g.redisSentinelName;
  if (g.node) o.node = g.node;
  if (g.prefix) o.prefix = g.prefix;
  if (g.timeoutMs) o.timeoutMs = g.timeoutMs;
  return o;
}

async function withClient<T>(fn: (c: CimqClient) => Promise<T>): Promise<T> {
  const config = loadConfig(overrides());
  await probe(config);
  const tracing = await startTracing('cimq-cli');
  const client = new CimqClient({
    redisUrl: config.redisUrl, node: config.node, prefix: config.prefix, timeoutMs: config.timeoutMs,
    ...(config.redisClusterNodes ? { redisClusterNodes: formatHostPorts(config.redisClusterNodes) } : {}),
    ...(config.redisSentinel ? { redisSentinels: formatHostPorts(config.redisSentinel.sentinels), redisSentinelName: config.redisSentinel.name } : {}),
    ...(tracing ? { telemetry: tracing.telemetry } : {}),
  });
  try {
    return await fn(client);
  } finally {
    await client.close();
    await tracing?.shutdown();
  }
}

function print(value: unknown, text: string): void {
  console.log(program.opts<GlobalOpts>().json ? JSON.stringify(value, null, 2) : text);
}

program
  .command('worker')
  .description('run the node daemon: take jobs off this node\'s queue and mount/unmount through CimFS')
  .option('--threads <n>', 'native call threads (env CIMQ_THREADS, default 4)')
  .option('--concurrency <n>', 'jobs processed at once (env CIMQ_CONCURRENCY, default 2 x threads)')
  .addOption(new Option('--backend <kind>', 'cimfs (cimfs.dll) or emulator (env CIMQ_BACKEND)').choices(['cimfs', 'emulator']))
  .option('--library <path>', 'load the backend library from this path (env CIMQ_LIBRARY)')
  .option('--allowed-roots <list>', 'cim paths must lie under these roots, separated by the path delimiter (env CIMQ_ALLOWED_ROOTS)')
  .option('--emulator-root <dir>', 'emulator state directory (env CIMFS_EMULATOR_ROOT)')
  .option('--emulator-latency-ms <ms>', 'emulator: block each call this long (env CIMFS_EMULATOR_LATENCY_MS)')
  .option('--log-level <level>', 'trace, debug, info, warn, error (env CIMQ_LOG_LEVEL, default info)')
  .option('--http-port <port>', 'health, metrics and dashboard port on loopback; 0 picks one, "off" (env CIMQ_HTTP_PORT, default 9540)')
  .option('--dashboard', 'serve the read-only queue dashboard at /dashboard (env CIMQ_DASHBOARD)')
  .action(async (o: Record<string, string | undefined>) => {
    const extra: ConfigOverrides = {};
    if (o.httpPort) extra.httpPort = o.httpPort;
    if (o.dashboard) extra.dashboard = true;
    if (o.threads) extra.threads = o.threads;
    if (o.concurrency) extra.concurrency = o.concurrency;
    if (o.backend) extra.backend = o.backend;
    if (o.library) extra.libraryPath = o.library;
    if (o.allowedRoots) extra.allowedRoots = o.allowedRoots;
    // The emulator reads its knobs from the process environment on every
    // call, so its flags are passed on through it.
    if (o.emulatorRoot) process.env.CIMFS_EMULATOR_ROOT = path.resolve(o.emulatorRoot);
    if (o.emulatorLatencyMs) {
      process.env.CIMFS_EMULATOR_LATENCY_MS = String(int('--emulator-latency-ms', o.emulatorLatencyMs, 0, 0, 3_600_000));
    }
    if (o.logLevel) extra.logLevel = o.logLevel;
    const config = loadConfig(overrides(extra));
    const log = createLogger(config.logLevel);
    const tracing = await startTracing('cimq-worker');
    const daemon = await startDaemon(config, { log, onFatal: () => process.exit(1), ...(tracing ? { telemetry: tracing.telemetry } : {}) });
    let signals = 0;
    const stop = (signal: string) => {
      if (++signals > 1) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      log.info({ signal }, 'shutting down: finishing running jobs');
      daemon.close().then(() => tracing?.shutdown()).then(() => process.exit(0), (err) => {
        log.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program
  .command('mount <cimPath> <containerId>')
  .description('mount a cim for a container and print its volume path')
  .option('--flags <n>', 'CIM_MOUNT_IMAGE_FLAGS (default 0x4, CacheFiles)')
  .action(async (cimPath: string, containerId: string, o: { flags?: string }) => {
    const flags = o.flags === undefined ? undefined : Number(o.flags);
    if (flags !== undefined && !Number.isInteger(flags)) throw new CimqError('INVALID_INPUT', `--flags must be a number (got ${o.flags})`);
    const r = await withClient((c) => c.mount({ containerId, cimPath, ...(flags === undefined ? {} : { flags }) }));
    print(r, r.volumePath);
  });

program
  .command('unmount <cimPath> <containerId>')
  .description('unmount a cim of a container')
  .action(async (cimPath: string, containerId: string) => {
    const r = await withClient((c) => c.unmount(containerId, cimPath));
    print(r, `unmounted ${r.volumePath}`);
  });

program
  .command('path <cimPath> <containerId>')
  .description('print the volume path of a mounted cim (from the cache; no job)')
  .action(async (cimPath: string, containerId: string) => {
    const p = await withClient((c) => c.getMountPath(cimPath, containerId));
    print({ cimPath, containerId, volumePath: p }, p);
  });

program
  .command('cleanup [containerId...]')
  .description('unmount everything of these containers, or of every container but the live ones, in one batch job')
  .option('--from-file <file>', 'read container ids from a file, one per line ("-" for standard input)')
  .option('--all-except <file>', 'clean every container of the node except the live ones listed in this file (one per line)')
  .option('--dry-run', 'list what would be unmounted; change nothing')
  .action(async (ids: string[], o: { fromFile?: string; allExcept?: string; dryRun?: boolean }) => {
    if (o.allExcept && (ids.length || o.fromFile)) {
      throw new CimqError('INVALID_INPUT', '--all-except takes the live containers from its file; give no other ids');
    }
    const targets = [...ids, ...(o.fromFile ? await readIds(o.fromFile) : [])];
    if (!o.allExcept && targets.length === 0) {
      throw new CimqError('INVALID_INPUT', 'name containers to clean up, --from-file ids.txt, or --all-except live.txt');
    }
    const json = program.opts<GlobalOpts>().json === true;
    const progress = progressReporter(!json && process.stderr.isTTY === true);
    const opts = { onProgress: progress.update, timeoutMs: Math.max(loadConfig(overrides()).timeoutMs, 3_600_000), ...(o.dryRun ? { dryRun: true } : {}) };
    const r = await withClient((c) => o.allExcept
      ? readIds(o.allExcept).then((live) => c.cleanupAllExcept(live, opts))
      : c.cleanupContainers(targets, opts)).finally(progress.stop);
    print(r, summary(r));
    if (r.failures.length > 0) process.exitCode = 1;
  });

async function readIds(file: string): Promise<string[]> {
  const text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A progress bar on a terminal, a line every few seconds otherwise (logs, CI). */
function progressReporter(tty: boolean): { update: (p: BatchProgress) => void; stop: () => void } {
  if (tty) {
    const bar = new SingleBar({ format: 'cleanup [{bar}] {value}/{total} containers, {failed} failed, eta {eta_formatted}', hideCursor: true }, Presets.shades_classic);
    let started = false;
    return {
      update: (p) => {
        if (!started) {
          bar.start(p.total, p.done, { failed: p.failed });
          started = true;
        } else bar.update(p.done, { failed: p.failed });
      },
      stop: () => started && bar.stop(),
    };
  }
  let last = 0;
  return {
    update: (p) => {
      const now = Date.now();
      if (p.done !== p.total && p.done !== 0 && now - last < 2000) return;
      last = now;
      console.error(`cleanup: ${p.done}/${p.total} done, ${p.failed} failed`);
    },
    stop: () => undefined,
  };
}

function summary(r: BatchCleanupResult): string {
  const verb = r.dryRun ? 'would unmount' : 'unmounted';
  const lines = r.unmounted.map((u) => `${verb} ${u.volumePath} (${u.containerId ?? 'no known container'})`);
  lines.push(`${r.dryRun ? 'dry run: ' : ''}${verb} ${r.unmounted.length} volume(s); ${r.total} looked at; ${r.failures.length} failed`);
  for (const f of r.failures) lines.push(`failed ${f.containerId ?? f.volumeGuid}: ${f.code}: ${f.message}`);
  return lines.join('\n');
}

program
  .command('status')
  .description("show the node's daemon, queue, cache and Redis round trip")
  .action(async () => {
    const st = await withClient((c) => c.status());
    const d = st.daemon;
    const lines = [
      `node        ${st.node}  (queue ${st.queue}, prefix ${st.prefix})`,
      d ? `daemon      ${d.ready ? 'ready' : 'NOT READY'}: pid ${d.pid} on ${d.host}, up ${formatAge(Date.now() - d.startedAt)}${d.http ? `, http ${d.http}` : ''}`
        : `daemon      none reporting${st.leaseHolder ? ` (lease held by ${st.leaseHolder})` : ''}; start one with "cimq worker"`,
      d ? `backend     ${d.backend}` : null,
      d ? `pool        ${d.threads} threads, ${d.busy} busy, ${d.stuck} stuck; concurrency ${d.concurrency}` : null,
      `jobs        ${Object.entries(st.jobs).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `cache       mounted ${st.cache.mounted}, mounting ${st.cache.mounting}, unmounting ${st.cache.unmounting}`,
      `redis       round trip ${st.redisRttMs} ms`,
    ].filter((l): l is string => l !== null);
    print(st, lines.join('\n'));
  });

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

program
  .command('ls')
  .description('list the mount cache of the node')
  .option('--container <id>', 'only this container')
  .action(async (o: { container?: string }) => {
    const entries = await withClient((c) => c.list(o.container ? { containerId: o.container } : {}));
    print(entries, table(entries));
  });

function table(entries: MountEntry[]): string {
  if (entries.length === 0) return 'no mounts';
  const t = new Table({ head: ['CONTAINER', 'CIM PATH', 'VOLUME', 'FLAGS', 'STATE', 'SINCE'], style: { head: [], border: [] } });
  for (const e of entries) {
    const since = new Date(e.mountedAt ?? e.updatedAt).toISOString();
    t.push([e.containerId, e.cimPath, e.volumePath, `0x${e.flags.toString(16)}`, e.state, since]);
  }
  return t.toString();
}

function fail(err: unknown): never {
  const json = program.opts<GlobalOpts>().json;
  if (err instanceof CimqError) {
    if (json) console.error(JSON.stringify({ code: err.code, message: err.detail, hresult: err.hresult }));
    else console.error(`cimq: ${err.message}`);
    process.exit(1);
  }
  if (err instanceof ConfigError || err instanceof RedisUnreachableError) {
    console.error(`cimq: ${err.message}`);
    process.exit(2);
  }
  console.error(`cimq: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
}

program.parseAsync(process.argv).catch(fail);
