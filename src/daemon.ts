// The node daemon: holds the node lease, reconciles what a dead predecessor
// left half-done, then runs a BullMQ Worker on the node's queue feeding the
// processor, which runs native calls on the Piscina pool and keeps the cache.
import type { Server } from 'node:http';
import { Queue, Worker, type Telemetry } from 'bullmq';
import type { Logger } from 'pino';
import { MountCache } from './cache.js';
import type { Config } from './config.js';
import { startHttpServer, serverPort, type Health } from './http.js';
import { Metrics, outcomeOf } from './metrics.js';
import { createDashboard, DASHBOARD_PATH } from './dashboard.js';
import { queueName } from './keys.js';
import { NodeLease } from './lease.js';
import { createLogger } from './log.js';
import { NativePool } from './pool.js';
import { createProcessor } from './processor.js';
import { placeOrphans, reconcile, type ReconcileReport } from './reconcile.js';
import { connect, describeTarget, probe } from './redis.js';
import { createValidator } from './validate.js';

export interface Daemon {
  readonly config: Config;
  readonly pool: NativePool;
  readonly cache: MountCache;
  readonly worker: Worker;
  readonly reconciled: ReconcileReport;
  /** The health endpoint's port, when it is on. */
  readonly httpPort: number | null;
  health(): Health;
  readonly metrics: Metrics;
  /**
   * Stops taking jobs and lets running ones (and their native calls) finish,
   * for at most shutdownTimeoutMs, then closes. Never aborts a native call.
   */
  close(): Promise<void>;
}

export interface DaemonOptions {
  log?: Logger;
  /** BullMQ telemetry (see startTracing), so job spans continue the producer's trace. */
  telemetry?: Telemetry;
  /** Called when the daemon must stop on its own (another daemon took the node). */
  onFatal?: (err: Error) => void;
}

export async function startDaemon(config: Config, opts: DaemonOptions = {}): Promise<Daemon> {
  const log = opts.log ?? createLogger(config.logLevel);
  await probe(config);

  if (config.allowedRoots.length === 0) {
    log.warn('CIMQ_ALLOWED_ROOTS is not set: any absolute cim path will be mounted; set it to the directories that hold your layers');
  }

  const redis = connect(config);
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  // The cache's own connection pipelines the commands of one tick together:
  // many jobs in flight share round trips.
  const cacheRedis = connect(config, { enableAutoPipelining: true });
  cacheRedis.on('error', () => {}); // reported by the main connection's listener
  const cache = new MountCache(cacheRedis, config.prefix, config.node);
  const name = queueName(config.node);

  let fatal: ((err: Error) => void) | undefined;
  const lease = new NodeLease(redis, {
    key: cache.keys.lease,
    node: config.node,
    leaseMs: config.leaseMs,
    log,
    onLost: (holder) => fatal?.(new Error(`lost node ${config.node} to another cimq worker (${holder}); stopping`)),
  });
  if (!(await lease.acquire())) throw new Error('stopped before the node lease was acquired');

  let metrics: Metrics | undefined;
  const pool = new NativePool({
    backend: config.backend,
    threads: config.threads,
    minThreads: config.minThreads,
    maxBatch: config.nativeBatch,
    callDeadlineMs: config.callDeadlineMs,
    onCall: (op, ms, hr) => metrics?.nativeCall(op, hr === 0, ms),
    ...(config.libraryPath ? { libraryPath: config.libraryPath } : {}),
  });
  // Resolve what a dead predecessor left half-done before taking any job.
  const reconciled = await reconcile(cache, pool, log);
  const telemetry = opts.telemetry ? { telemetry: opts.telemetry } : {};
  const queue = new Queue(name, { connection: redis, prefix: config.prefix, ...telemetry });
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error')); // the connection's own listener reports it
  // Its jobs still in the active list come back later: fix their order now.
  await placeOrphans(redis, cache);
  const processor = createProcessor({
    cache, pool, validator: createValidator(config), log,
    jobState: (id) => queue.getJobState(id),
  });
  const worker = new Worker(name, processor, {
    connection: redis,
    prefix: config.prefix,
    concurrency: config.concurrency,
    // A node daemon's jobs are short and its event loop never blocks, so a
    // short lock is safe, and it bounds how long a dead daemon's jobs wait
    // before they come back (about lockMs + stalledIntervalMs).
    lockDuration: config.lockMs,
    stalledInterval: config.stalledIntervalMs,
    // Every job is idempotent, so a redelivery after a crash is safe.
    maxStalledCount: config.maxStalledCount,
    autorun: false,
    ...telemetry,
  });
  // Connection trouble is reported once per event by the connection's listener.
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));
  void worker.run().catch((err: Error) => log.error({ err: err.message }, 'worker stopped with an error'));
  await worker.waitUntilReady();

  const health = (): Health => {
    const reasons: string[] = [];
    if (redis.status !== 'ready') reasons.push(`redis ${redis.status}`);
    if (!lease.held) reasons.push('node lease not held');
    if (!worker.isRunning()) reasons.push('worker not running');
    const stuck = pool.stuck;
    if (stuck.length) reasons.push(`${stuck.length} native call(s) past their deadline`);
    return {
      ready: reasons.length === 0,
      reasons,
      node: config.node,
      backend: config.backend,
      redis: redis.status,
      lease: lease.held,
      pool: { threads: pool.threads, busy: pool.busy, stuck },
    };
  };

  metrics = new Metrics({
    queueCounts: () => queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
    cacheStates: () => cache.stateCounts(),
    pool: () => ({
      threads: pool.threads, busy: pool.busy, stuck: pool.stuck.length, utilization: pool.utilization, calls: pool.calls, handOffs: pool.handOffs,
    }),
    ready: () => health().ready,
  });
  const m = metrics;
  worker.on('completed', (job) => m.jobFinished(job.name, 'completed', ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000));
  worker.on('failed', (job, err) => {
    if (job) m.jobFinished(job.name, outcomeOf(err.message), ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000);
  });

  // What `cimq status` shows of this daemon, refreshed while it runs.
  const startedAt = Date.now();
  let httpAddress: string | null = null;
  const publishStatus = () => redis.set(cache.keys.status, JSON.stringify({
    host: lease.holder.host, pid: process.pid, startedAt, backend: config.backend, threads: pool.threads, busy: pool.busy,
    stuck: pool.stuck.length, concurrency: config.concurrency, ready: health().ready,
    http: httpAddress, at: Date.now(),
  }), 'PX', 10_000).catch(() => undefined);
  const statusTimer = setInterval(() => void publishStatus(), 2000);
  statusTimer.unref();

  let server: Server | null = null;
  try {
    if (config.dashboard && !config.http) throw new Error('CIMQ_DASHBOARD needs the HTTP port: set CIMQ_HTTP_PORT (not "off")');
    const fallback = config.dashboard ? await createDashboard(queue, config.node) : undefined;
    server = config.http
      ? await startHttpServer(config.http.host, config.http.port, { health, metrics: () => m.text(), ...(fallback ? { fallback } : {}) })
      : null;
  } catch (err) {
    clearInterval(statusTimer);
    await worker.close(true);
    await pool.close();
    await lease.release();
    redis.disconnect();
    cacheRedis.disconnect();
    throw err;
  }
  const httpPort = server ? serverPort(server) : null;
  httpAddress = server ? `${config.http!.host}:${httpPort}` : null;
  void publishStatus();

  log.info({
    node: config.node, queue: name, prefix: config.prefix, redis: describeTarget(config),
    backend: config.backend, threads: config.threads, concurrency: config.concurrency,
    allowedRoots: config.allowedRoots, reconciled, http: httpPort === null ? 'off' : `${config.http!.host}:${httpPort}`,
    ...(config.dashboard ? { dashboard: `http://${config.http!.host}:${httpPort}${DASHBOARD_PATH}` } : {}),
  }, 'cimq worker ready');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        worker.close().then(() => false),
        new Promise<boolean>((r) => { timer = setTimeout(() => r(true), config.shutdownTimeoutMs); }),
      ]);
      clearTimeout(timer);
      clearInterval(statusTimer);
      if (timedOut) {
        // Exit without aborting the calls: their jobs come back to the next daemon.
        log.warn({ busy: pool.busy, timeoutMs: config.shutdownTimeoutMs }, 'shutdown timeout: leaving running jobs to the next daemon');
      } else {
        await pool.close();
        await redis.del(cache.keys.status).catch(() => undefined);
        await lease.release();
      }
      await queue.close();
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      await Promise.all([redis, cacheRedis].map((r) => r.quit().catch(() => r.disconnect())));
      log.info('cimq worker stopped');
    })();
    return closing;
  };
  fatal = (err) => {
    log.error({ err: err.message }, 'fatal');
    void close().finally(() => opts.onFatal?.(err));
  };

  return { config, pool, cache, worker, reconciled, httpPort, health, metrics: m, close };
}
