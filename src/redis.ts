// Redis connections: a standalone server (REDIS_URL), a Redis Cluster
// (REDIS_CLUSTER_NODES) or a Sentinel-watched master (REDIS_SENTINELS), all
// through ioredis's own support. Every key of one node carries the node's
// hash tag, so on a Cluster a node's queue and cache live in one slot and
// every Lua script stays atomic. BullMQ needs maxRetriesPerRequest: null on
// the connections its workers use; start-up probes fail fast instead.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { formatHostPorts, redactUrl, type Config } from './config.js';

/** A connection of any kind: cimq only sends commands whose keys share one slot. */
export type RedisClient = Redis | Cluster;

export type RedisTarget = Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisSentinel'>;

/** A URL alone (tests, tools) as a target. */
export function urlTarget(redisUrl: string): RedisTarget {
  return { redisUrl, redisClusterNodes: null, redisSentinel: null };
}

/** Where cimq connects, for logs and errors; no secrets. */
export function describeTarget(t: RedisTarget): string {
  if (t.redisClusterNodes) return `Redis Cluster ${formatHostPorts(t.redisClusterNodes)}`;
  if (t.redisSentinel) return `Redis master "${t.redisSentinel.name}" via Sentinels ${formatHostPorts(t.redisSentinel.sentinels)}`;
  return `Redis at ${redactUrl(t.redisUrl)}`;
}

/** The user, password and TLS of REDIS_URL, which also apply to Cluster nodes and Sentinel masters. */
function credentials(url: string): RedisOptions {
  try {
    const u = new URL(url);
    return {
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    };
  } catch {
    return {};
  }
}

export function connect(t: RedisTarget, extra: RedisOptions = {}): RedisClient {
  const base: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true };
  if (t.redisClusterNodes) {
    const { enableAutoPipelining, ...redisOptions } = extra;
    const opts: ClusterOptions = {
      redisOptions: { ...base, ...credentials(t.redisUrl), ...redisOptions },
      ...(enableAutoPipelining ? { enableAutoPipelining } : {}),
      // A failover moves slots: learn the new map soon after a MOVED.
      slotsRefreshTimeout: 2000,
    };
    return new Cluster(t.redisClusterNodes, opts);
  }
  if (t.redisSentinel) {
    const cred = credentials(t.redisUrl);
    return new Redis({
      ...base, ...cred, ...extra,
      sentinels: t.redisSentinel.sentinels,
      name: t.redisSentinel.name,
      // Sentinels speak TLS when the master does; their password is their own.
      ...(cred.tls ? { enableTLSForSentinelMode: true } : {}),
      ...(t.redisSentinel.password ? { sentinelPassword: t.redisSentinel.password } : {}),
    });
  }
  return new Redis(t.redisUrl, { ...base, ...extra });
}

export class RedisUnreachableError extends Error {
  override name = 'RedisUnreachableError';
}

/**
 * One PING with a short deadline and no retries, so a daemon or CLI started
 * without Redis says so at once, naming what it tried.
 */
export async function probe(t: RedisTarget | string, timeoutMs = 3000): Promise<void> {
  const target = typeof t === 'string' ? urlTarget(t) : t;
  const fast: RedisOptions = {
    lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
  };
  const r = target.redisClusterNodes
    ? new Cluster(target.redisClusterNodes, {
      lazyConnect: true, redisOptions: { ...fast, ...credentials(target.redisUrl) }, clusterRetryStrategy: () => null, enableOfflineQueue: false,
    })
    : connect(target, fast);
  let last: Error | undefined;
  r.on('error', (err: Error) => (last = err)); // reported below
  const where = describeTarget(target);
  let timer: NodeJS.Timeout | undefined;
  try {
    // A Sentinel that does not know the master never fails the connect: bound it.
    await Promise.race([
      r.connect().then(() => r.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs + 500);
      }),
    ]);
  } catch (err) {
    const cause = last ?? (err as Error);
    if (target.redisSentinel && /sentinels are unreachable.*(WRONGPASS|NOAUTH)/is.test(cause.message)) {
      throw new RedisUnreachableError(
        `the Sentinels ${formatHostPorts(target.redisSentinel.sentinels)} refused the credentials (${cause.message.split('\n')[0]}); ` +
          'set REDIS_SENTINEL_PASSWORD to the Sentinels\' own password (requirepass in sentinel.conf).',
      );
    }
    if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(cause.message)) {
      throw new RedisUnreachableError(
        `${where} refused the credentials (${cause.message.split('\n')[0]}); ` +
          'check the user name and password in REDIS_URL / --redis-url (redis://user:password@host:port).',
      );
    }
    const hint = target.redisClusterNodes
      ? 'check REDIS_CLUSTER_NODES / --redis-cluster-nodes: at least one seed node must answer and the cluster must be up (redis-cli --cluster check host:port)'
      : target.redisSentinel
        ? 'check REDIS_SENTINELS and REDIS_SENTINEL_NAME: a Sentinel must answer and know that master (redis-cli -p 26379 sentinel masters)'
        : 'start one with "docker compose up -d redis", or on Debian/Ubuntu "apt-get install redis-server" ' +
          '(it starts on 127.0.0.1:6379), or point REDIS_URL / --redis-url at yours';
    throw new RedisUnreachableError(`cannot reach ${where} (${cause.message}). ${hint[0]!.toUpperCase()}${hint.slice(1)}.`);
  } finally {
    clearTimeout(timer);
    r.disconnect();
  }
}
