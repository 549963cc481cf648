// The client library for orchestrators: enqueue a job on a node's queue and
// wait for its result, or read the cache directly for a mount path.
import { Job, Queue, QueueEvents, type JobsOptions, type Telemetry } from 'bullmq';
import { MountCache } from './cache.js';
import { loadConfig, type ConfigOverrides } from './config.js';
import type {
  BatchCleanupResult, BatchProgress, CleanupResult, JobName, JobPayloads, JobResults, MountEntry, MountRequest, MountResult,
  UnmountResult,
} from './contract.js';
import { CimqError } from './errors.js';
import { cacheKeys, queueName } from './keys.js';
import { describeHolder } from './lease.js';
import { connect, type RedisClient } from './redis.js';

export interface ClientOptions {
  /** redis:// URL; default REDIS_URL or redis://127.0.0.1:6379. With a Cluster or Sentinels, its user, password and TLS. */
  redisUrl?: string;
  /** Redis Cluster seed nodes, "host:port,host:port"; default REDIS_CLUSTER_NODES. */
  redisClusterNodes?: string;
  /** Sentinels, "host:port,host:port"; default REDIS_SENTINELS. */
  redisSentinels?: string;
  /** The master's name at the Sentinels; default REDIS_SENTINEL_NAME or mymaster. */
  redisSentinelName?: string;
  /** The node whose daemon should run the jobs; default CIMQ_NODE or this host. */
  node?: string;
  prefix?: string;
  /** How long to wait for a job's result; default CIMQ_TIMEOUT_MS or 60 s. */
  timeoutMs?: number;
  /** BullMQ options for every job; merged over the defaults below. */
  jobOptions?: JobsOptions;
  /** BullMQ telemetry (see startTracing): the daemon's spans join the caller's trace. */
  telemetry?: Telemetry;
}

/**
 * Retries for transient failures (permanent ones fail at once, whatever the
 * attempts), and bounded retention so finished jobs do not pile up in Redis.
 */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 24 * 3600, count: 10_000 },
};

/** What a running daemon publishes about itself every few seconds. */
export interface DaemonStatus {
  host: string;
  pid: number;
  startedAt: number;
  backend: string;
  threads: number;
  busy: number;
  stuck: number;
  concurrency: number;
  ready: boolean;
  http: string | null;
  at: number;
}

export interface NodeStatus {
  node: string;
  prefix: string;
  queue: string;
  /** null when no daemon has reported in the last 10 s. */
  daemon: DaemonStatus | null;
  leaseHolder: string | null;
  jobs: Record<string, number>;
  cache: { mounting: number; mounted: number; unmounting: number };
  /** Median of five PINGs. */
  redisRttMs: number;
}

export interface RunOptions {
  /** Batch jobs: called with done/total/failed as the job goes. */
  onProgress?: (p: BatchProgress) => void;
  /** Overrides the client's timeout for this job. */
  timeoutMs?: number;
}

export interface BatchOptions extends RunOptions {
  /** Report what would be unmounted; change nothing. */
  dryRun?: boolean;
}

export class CimqClient {
  readonly node: string;
  readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly redis: RedisClient;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  /** QueueEvents blocks on XREAD, so it needs a connection of its own. */
  private readonly eventsRedis: RedisClient;
  private readonly cache: MountCache;
  private ready: Promise<void> | undefined;
  /** Calls waiting for a result, told to look at their job when the event stream may have missed it. */
  private readonly waiting = new Set<() => void>();
  /** Until when waiting calls look at their jobs themselves (after trouble on the event stream). */
  private lookUntil = 0;
  private lookTimer: NodeJS.Timeout | undefined;

  constructor(opts: ClientOptions = {}) {
    const overrides: ConfigOverrides = {};
    if (opts.redisUrl) overrides.redisUrl = opts.redisUrl;
    if (opts.redisClusterNodes) overrides.redisClusterNodes = opts.redisClusterNodes;
    if (opts.redisSentinels) overrides.redisSentinels = opts.redisSentinels;
    if (opts.redisSentinelName) overrides.redisSentinelName = opts.redisSentinelName;
    if (opts.node) overrides.node = opts.node;
    if (opts.prefix) overrides.prefix = opts.prefix;
    if (opts.timeoutMs) overrides.timeoutMs = opts.timeoutMs;
    const config = loadConfig(overrides);
    this.node = config.node;
    this.prefix = config.prefix;
    this.timeoutMs = config.timeoutMs;
    this.redis = connect(config);
    this.redis.on('error', () => {}); // surfaced by the calls that fail
    const name = queueName(this.node);
    this.queue = new Queue(name, {
      connection: this.redis,
      prefix: this.prefix,
      defaultJobOptions: { ...DEFAULT_JOB_OPTIONS, ...opts.jobOptions },
      ...(opts.telemetry ? { telemetry: opts.telemetry } : {}),
    });
    this.queue.on('error', () => {}); // surfaced by the calls that fail
    this.eventsRedis = connect(config);
    this.eventsRedis.on('error', () => {});
    this.events = new QueueEvents(name, { connection: this.eventsRedis, prefix: this.prefix });
    // After a failover or a reconnect, BullMQ reads the event stream again
    // only 5 s later; meanwhile each waiting call looks at its job itself.
    this.events.on('error', () => this.eventStreamTrouble());
    for (const e of ['error', 'node error', '-node', 'reconnecting']) this.eventsRedis.on(e, () => this.eventStreamTrouble());
    // Each call in flight waits with listeners of its own on the events and
    // the queue (for its closing); an orchestrator may have hundreds in flight.
    this.events.setMaxListeners(0);
    this.queue.setMaxListeners(0);
    this.cache = new MountCache(this.redis, this.prefix, this.node);
  }

  private eventStreamTrouble(): void {
    this.lookUntil = Date.now() + 6000;
    if (this.lookTimer) return;
    const look = () => {
      for (const f of this.waiting) f();
      if (Date.now() < this.lookUntil && this.waiting.size > 0) this.lookTimer = setTimeout(look, 250);
      else this.lookTimer = undefined;
    };
    this.lookTimer = setTimeout(look, 250);
  }

  /** Settles when a look at the job finds it finished for good (completed, or failed with no retry left). */
  private lookedUp(jobId: string, stop: Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let busy = false;
      const look = () => {
        if (busy) return;
        busy = true;
        Job.fromId(this.queue, jobId).then(async (j) => {
          const state = j ? await j.getState() : 'unknown';
          if (state === 'completed') resolve(j!.returnvalue);
          else if (state === 'failed') reject(new Error(j!.failedReason));
        }).catch(() => undefined).finally(() => { busy = false; });
      };
      this.waiting.add(look);
      void stop.finally(() => this.waiting.delete(look)).catch(() => undefined);
    });
  }

  private waitReady(): Promise<void> {
    // QueueEvents must be listening before a job is added, or a fast result is missed.
    this.ready ??= Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]).then(() => undefined);
    return this.ready;
  }

  /** Enqueues one job and waits for its result; failures throw CimqError. */
  async run<N extends JobName>(name: N, data: JobPayloads[N], opts: RunOptions = {}): Promise<JobResults[N]> {
    await this.waitReady();
    // Listen before adding: a fast job can report progress before add() returns.
    let jobId: string | undefined;
    const early: { jobId: string; data: unknown }[] = [];
    const onProgress = opts.onProgress;
    const listener = (e: { jobId: string; data: unknown }) => {
      if (jobId === undefined) early.push(e);
      else if (e.jobId === jobId) onProgress!(e.data as BatchProgress);
    };
    if (onProgress) this.events.on('progress', listener);
    const job = await this.queue.add(name, data).catch((err: unknown) => {
      if (onProgress) this.events.off('progress', listener);
      throw err;
    });
    jobId = job.id;
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    for (const e of early) if (e.jobId === jobId) onProgress!(e.data as BatchProgress);
    try {
      const finished = job.waitUntilFinished(this.events, timeoutMs);
      return (await Promise.race([finished, this.lookedUp(job.id!, finished)])) as JobResults[N];
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (/timed out before finishing/.test(message)) {
        throw new CimqError('TIMEOUT',
          `${name} job ${job.id} on node ${this.node} not finished after ${timeoutMs} ms; is "cimq worker" running for node ${this.node}?`,
          undefined, false);
      }
      throw CimqError.fromFailedReason(message);
    } finally {
      if (onProgress) this.events.off('progress', listener);
    }
  }

  mount(req: MountRequest): Promise<MountResult> {
    return this.run('mount', req);
  }

  unmount(containerId: string, cimPath: string): Promise<UnmountResult> {
    return this.run('unmount', { containerId, cimPath });
  }

  cleanup(containerId: string): Promise<CleanupResult> {
    return this.run('cleanup', { containerId });
  }

  /** Cleans many containers in one job; `onProgress` sees done/total/failed as it goes. */
  cleanupContainers(containerIds: string[], opts: BatchOptions = {}): Promise<BatchCleanupResult> {
    return this.run('cleanup-batch', { containerIds, ...(opts.dryRun ? { dryRun: true } : {}) }, opts);
  }

  /** After a crash: cleans every container of the node except the live ones, and volumes no container owns. */
  cleanupAllExcept(liveContainerIds: string[], opts: BatchOptions = {}): Promise<BatchCleanupResult> {
    return this.run('cleanup-all-except', { liveContainerIds, ...(opts.dryRun ? { dryRun: true } : {}) }, opts);
  }

  /** The volume path of a mounted cim, from the cache; no job. */
  async getMountPath(cimPath: string, containerId: string): Promise<string> {
    const e = await this.cache.get(containerId, cimPath);
    if (!e || e.state !== 'mounted') throw new CimqError('NOT_MOUNTED', `cim ${cimPath} not mounted`);
    return e.volumePath;
  }

  /** What `cimq status` shows: the node's daemon, queue, cache and Redis round trip. */
  async status(): Promise<NodeStatus> {
    const keys = cacheKeys(this.prefix, this.node);
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await this.redis.ping();
      rtts.push(performance.now() - t);
    }
    rtts.sort((a, b) => a - b);
    const [lease, daemon, queue, cache] = await Promise.all([
      this.redis.get(keys.lease),
      this.redis.get(keys.status),
      this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
      this.cache.stateCounts(),
    ]);
    return {
      node: this.node,
      prefix: this.prefix,
      queue: queueName(this.node),
      daemon: daemon ? (JSON.parse(daemon) as DaemonStatus) : null,
      leaseHolder: lease ? describeHolder(lease) : null,
      jobs: queue,
      cache: { mounting: cache.mounting ?? 0, mounted: cache.mounted ?? 0, unmounting: cache.unmounting ?? 0 },
      redisRttMs: Number(rtts[2]!.toFixed(3)),
    };
  }

  list(filter: { containerId?: string } = {}): Promise<MountEntry[]> {
    return this.cache.list(filter);
  }

  // The seed's API (hcsshim internal/cim/mount.go), for drop-in use.

  /** MountCimLayer: mounts with CacheFiles and returns the volume path. */
  async mountCimLayer(cimPath: string, containerId: string): Promise<string> {
    return (await this.mount({ cimPath, containerId })).volumePath;
  }

  async unmountCimLayer(cimPath: string, containerId: string): Promise<void> {
    await this.unmount(containerId, cimPath);
  }

  getCimMountPath(cimPath: string, containerId: string): Promise<string> {
    return this.getMountPath(cimPath, containerId);
  }

  async cleanupContainerMounts(containerId: string): Promise<void> {
    await this.cleanup(containerId);
  }

  async close(): Promise<void> {
    clearTimeout(this.lookTimer);
    await this.events.close();
    await this.queue.close();
    // Connections passed in are not closed by BullMQ: close both ourselves.
    await Promise.all([this.eventsRedis, this.redis].map((r) => r.quit().catch(() => r.disconnect())));
  }
}
