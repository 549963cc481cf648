// Configuration from the environment, overridable by CLI flags. One place
// decides every default, so the daemon, the client and the CLI agree.
import os from 'node:os';
import path from 'node:path';
import { BACKEND_KINDS, defaultBackendKind, type BackendKind } from '../native/backend.js';
import { checkAllowedRoot, type PathFlavor } from './validate.js';

/** A Redis host and port (Cluster seed nodes, Sentinels). */
export interface HostPort {
  host: string;
  port: number;
}

export interface Config {
  /** Standalone Redis; with Cluster or Sentinel set, only its user, password and TLS (rediss:) are used. */
  redisUrl: string;
  /** Redis Cluster seed nodes (REDIS_CLUSTER_NODES); when set, cimq talks to the Cluster. */
  redisClusterNodes: HostPort[] | null;
  /** Redis Sentinels (REDIS_SENTINELS) and the master's name (REDIS_SENTINEL_NAME). */
  redisSentinel: { sentinels: HostPort[]; name: string; password?: string } | null;
  node: string;
  prefix: string;
  /** Piscina threads: native calls that can block at once. */
  threads: number;
  /** Threads kept running when idle; the rest start on demand. */
  minThreads: number;
  /** Most short native calls sent to a thread in one hand-off (1: one call each). */
  nativeBatch: number;
  /** BullMQ jobs processed at once. */
  concurrency: number;
  backend: BackendKind;
  /** Where the backend library is loaded from; default per backend. */
  libraryPath?: string;
  /** Cim paths must lie under one of these; empty allows any absolute path. */
  allowedRoots: string[];
  flavor: PathFlavor;
  /** How long a client waits for a job's result. */
  timeoutMs: number;
  logLevel: string;
  /** BullMQ job lock: a dead daemon's jobs come back this long after it died. */
  lockMs: number;
  /** How often BullMQ looks for jobs whose lock lapsed. */
  stalledIntervalMs: number;
  /** Redeliveries after a daemon death before BullMQ gives a job up. */
  maxStalledCount: number;
  /** The node lease: how long a dead daemon on another host blocks a standby. */
  leaseMs: number;
  /** A native call running longer is reported stuck and its job fails (0: never). */
  callDeadlineMs: number;
  /** On SIGTERM/SIGINT, how long running jobs get to finish before exit. */
  shutdownTimeoutMs: number;
  /** Health endpoints; null when off. */
  http: { host: string; port: number } | null;
  /** The bull-board dashboard at /dashboard on the HTTP port. */
  dashboard: boolean;
}

export type ConfigOverrides = Partial<{
  redisUrl: string;
  redisClusterNodes: string;
  redisSentinels: string;
  redisSentinelName: string;
  node: string;
  prefix: string;
  threads: string | number;
  minThreads: string | number;
  nativeBatch: string | number;
  concurrency: string | number;
  backend: string;
  libraryPath: string;
  allowedRoots: string;
  timeoutMs: string | number;
  logLevel: string;
  lockMs: string | number;
  stalledIntervalMs: string | number;
  maxStalledCount: string | number;
  leaseMs: string | number;
  callDeadlineMs: string | number;
  shutdownTimeoutMs: string | number;
  httpPort: string | number;
  httpHost: string;
  dashboard: string | boolean;
}>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function int(name: string, v: string | number | undefined, def: number, min: number, max: number): number {
  if (v === undefined || v === '') return def;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return n;
}

/** Node names become Redis hash tags and queue names: keep them tame. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function loadConfig(overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = <K extends keyof ConfigOverrides>(k: K, envName: string) => overrides[k] ?? env[envName];
  const node = String(pick('node', 'CIMQ_NODE') || os.hostname());
  if (!NODE_NAME.test(node)) {
    throw new ConfigError(`node name ${JSON.stringify(node)} must be letters, digits, ".", "_" or "-" (set CIMQ_NODE or --node)`);
  }
  const prefix = String(pick('prefix', 'CIMQ_PREFIX') || 'cimq');
  if (!PREFIX.test(prefix)) {
    throw new ConfigError(`prefix ${JSON.stringify(prefix)} must be letters, digits, ".", "_" or "-" (CIMQ_PREFIX or --prefix)`);
  }
  const backend = String(pick('backend', 'CIMQ_BACKEND') || defaultBackendKind());
  if (!(BACKEND_KINDS as readonly string[]).includes(backend)) {
    throw new ConfigError(`backend ${JSON.stringify(backend)} is not one of ${BACKEND_KINDS.join(', ')} (CIMQ_BACKEND or --backend)`);
  }
  const flavor: PathFlavor = process.platform === 'win32' ? 'win32' : 'posix';
  const rootsRaw = String(pick('allowedRoots', 'CIMQ_ALLOWED_ROOTS') ?? '');
  const allowedRoots = rootsRaw.split(path.delimiter).map((s) => s.trim()).filter(Boolean);
  for (const r of allowedRoots) {
    const e = checkAllowedRoot(r, flavor);
    if (e) throw new ConfigError(`${e} (CIMQ_ALLOWED_ROOTS, separated by "${path.delimiter}")`);
  }

  const redisClusterNodes = hostPorts('REDIS_CLUSTER_NODES', pick('redisClusterNodes', 'REDIS_CLUSTER_NODES'));
  const sentinels = hostPorts('REDIS_SENTINELS', pick('redisSentinels', 'REDIS_SENTINELS'));
  if (redisClusterNodes && sentinels) {
    throw new ConfigError('set REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both: a Redis Cluster is not run under Sentinel');
  }
  const sentinelName = String(pick('redisSentinelName', 'REDIS_SENTINEL_NAME') || 'mymaster');

  const threads = int('CIMQ_THREADS', pick('threads', 'CIMQ_THREADS'), 4, 1, 256);
  const libraryPath = pick('libraryPath', 'CIMQ_LIBRARY');
  return {
    redisUrl: String(pick('redisUrl', 'REDIS_URL') || 'redis://127.0.0.1:6379'),
    redisClusterNodes,
    // The Sentinels' own password, when they have one: environment only, never a flag.
    redisSentinel: sentinels ? { sentinels, name: sentinelName, ...(env.REDIS_SENTINEL_PASSWORD ? { password: env.REDIS_SENTINEL_PASSWORD } : {}) } : null,
    node,
    prefix,
    threads,
    minThreads: int('CIMQ_MIN_THREADS', pick('minThreads', 'CIMQ_MIN_THREADS'), threads, 1, threads),
    nativeBatch: int('CIMQ_NATIVE_BATCH', pick('nativeBatch', 'CIMQ_NATIVE_BATCH'), 64, 1, 1024),
    concurrency: int('CIMQ_CONCURRENCY', pick('concurrency', 'CIMQ_CONCURRENCY'), threads * 2, 1, 10_000),
    backend: backend as BackendKind,
    ...(libraryPath ? { libraryPath: String(libraryPath) } : {}),
    allowedRoots,
    flavor,
    timeoutMs: int('CIMQ_TIMEOUT_MS', pick('timeoutMs', 'CIMQ_TIMEOUT_MS'), 60_000, 1, 86_400_000),
    logLevel: String(pick('logLevel', 'CIMQ_LOG_LEVEL') || 'info'),
    lockMs: int('CIMQ_LOCK_MS', pick('lockMs', 'CIMQ_LOCK_MS'), 5000, 500, 600_000),
    stalledIntervalMs: int('CIMQ_STALLED_INTERVAL_MS', pick('stalledIntervalMs', 'CIMQ_STALLED_INTERVAL_MS'), 3000, 100, 600_000),
    maxStalledCount: int('CIMQ_MAX_STALLED', pick('maxStalledCount', 'CIMQ_MAX_STALLED'), 5, 0, 1000),
    leaseMs: int('CIMQ_LEASE_MS', pick('leaseMs', 'CIMQ_LEASE_MS'), 5000, 300, 600_000),
    callDeadlineMs: int('CIMQ_CALL_DEADLINE_MS', pick('callDeadlineMs', 'CIMQ_CALL_DEADLINE_MS'), 120_000, 0, 86_400_000),
    shutdownTimeoutMs: int('CIMQ_SHUTDOWN_TIMEOUT_MS', pick('shutdownTimeoutMs', 'CIMQ_SHUTDOWN_TIMEOUT_MS'), 30_000, 0, 86_400_000),
    http: httpConfig(pick('httpPort', 'CIMQ_HTTP_PORT'), pick('httpHost', 'CIMQ_HTTP_HOST')),
    dashboard: flag('CIMQ_DASHBOARD', pick('dashboard', 'CIMQ_DASHBOARD')),
  };
}

/** HostPort[] → "host:port,host:port", the form hostPorts reads. */
export function formatHostPorts(list: HostPort[]): string {
  return list.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',');
}

/** "host:port,host:port" (IPv6 as [::1]:7000) → HostPort[]; unset → null. */
function hostPorts(name: string, v: string | undefined): HostPort[] | null {
  if (v === undefined || v.trim() === '') return null;
  return v.split(',').map((item) => {
    const s = item.trim();
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(s);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      throw new ConfigError(`${name} must be comma-separated host:port pairs, like 10.0.0.1:7000,10.0.0.2:7000 (got ${JSON.stringify(s)})`);
    }
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

function flag(name: string, v: string | boolean | undefined): boolean {
  if (v === undefined || v === '' || v === false) return false;
  if (v === true) return true;
  if (/^(1|true|on|yes)$/i.test(v)) return true;
  if (/^(0|false|off|no)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be on or off (got ${JSON.stringify(v)})`);
}

/** CIMQ_HTTP_PORT: a port (0 picks a free one) or "off"; loopback unless CIMQ_HTTP_HOST says otherwise. */
function httpConfig(port: string | number | undefined, host: string | undefined): Config['http'] {
  if (port === 'off') return null;
  return { host: host || '127.0.0.1', port: int('CIMQ_HTTP_PORT', port, 9540, 0, 65535) };
}

/** redis://user:secret@host → redis://user:***@host, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}
