// The node daemon: a BullMQ Worker on the node's queue, feeding the processor,
// which runs native calls on the Piscina pool and keeps the cache in Redis.
import { Worker } from 'bullmq';
import type { Logger } from 'pino';
import { MountCache } from './cache.js';
import { redactUrl, type Config } from './config.js';
import { queueName } from './keys.js';
import { createLogger } from './log.js';
import { NativePool } from './pool.js';
import { createProcessor } from './processor.js';
import { connect, probe } from './redis.js';
import { createValidator } from './validate.js';

export interface Daemon {
  readonly config: Config;
  readonly pool: NativePool;
  readonly cache: MountCache;
  readonly worker: Worker;
  /** Stops taking jobs, lets running ones (and their native calls) finish, then closes. */
  close(): Promise<void>;
}

export async function startDaemon(config: Config, opts: { log?: Logger } = {}): Promise<Daemon> {
  const log = opts.log ?? createLogger(config.logLevel);
  await probe(config.redisUrl);

  if (config.allowedRoots.length === 0) {
    log.warn('CIMQ_ALLOWED_ROOTS is not set: any absolute cim path will be mounted; set it to the directories that hold your layers');
  }

  const redis = connect(config.redisUrl);
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const cache = new MountCache(redis, config.prefix, config.node);
  const pool = new NativePool({
    backend: config.backend,
    threads: config.threads,
    ...(config.libraryPath ? { libraryPath: config.libraryPath } : {}),
  });
  const processor = createProcessor({ cache, pool, validator: createValidator(config), log });
  const worker = new Worker(queueName(config.node), processor, {
    connection: redis,
    prefix: config.prefix,
    concurrency: config.concurrency,
    // Results live on in the job hash only as long as the producer may read them.
    autorun: true,
  });
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
  await worker.waitUntilReady();

  log.info({
    node: config.node, queue: queueName(config.node), prefix: config.prefix, redis: redactUrl(config.redisUrl),
    backend: config.backend, threads: config.threads, concurrency: config.concurrency,
    allowedRoots: config.allowedRoots,
  }, 'cimq worker ready');

  let closing: Promise<void> | undefined;
  return {
    config,
    pool,
    cache,
    worker,
    close() {
      closing ??= (async () => {
        await worker.close();
        await pool.close();
        await redis.quit().catch(() => redis.disconnect());
        log.info('cimq worker stopped');
      })();
      return closing;
    },
  };
}
