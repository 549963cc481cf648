// Per-file test environment: a private key prefix and node on the shared
// Redis, a private emulator state directory, and cim files to mount.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { loadConfig, startDaemon, type Config, type ConfigOverrides, type Daemon } from '../../dist/src/index.js';
import { createLogger } from '../../dist/src/log.js';

export const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

const execFileP = promisify(execFile);

/** Runs the `cimq` CLI bound to a test env; never throws, returns its exit code and output. */
export async function runCli(env: TestEnv, extraEnv: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { env: env.childEnv(extraEnv), timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export interface TestEnv {
  redisUrl: string;
  prefix: string;
  node: string;
  /** The emulator's state directory (its mount table). */
  emulatorRoot: string;
  /** A directory of .cim files. */
  layers: string;
  redis: Redis;
  /** Writes a cim file under layers/ and returns its path. */
  cim(name: string): string;
  /** Volume directories the emulator has mounted right now. */
  mountedVolumes(): string[];
  config(over?: ConfigOverrides): Config;
  startDaemon(over?: ConfigOverrides): Promise<Daemon>;
  /** Environment for a child process (CLI, daemon) bound to this test env. */
  childEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** A plain BullMQ producer on this node's queue, as a non-cimq client would use. */
  plainProducer(): Promise<PlainProducer>;
  dispose(): Promise<void>;
}

export interface PlainProducer {
  queue: Queue;
  events: QueueEvents;
  close(): Promise<void>;
}

export async function createTestEnv(name: string, opts: { redisUrl?: string } = {}): Promise<TestEnv> {
  const redisUrl = opts.redisUrl ?? inject('redisUrl');
  const id = `${name}-${randomBytes(4).toString('hex')}`;
  const prefix = `cimq-test-${id}`;
  const node = `node-${id}`;
  const dir = mkdtempSync(path.join(tmpdir(), `cimq-${name}-`));
  const emulatorRoot = path.join(dir, 'emulator');
  const layers = path.join(dir, 'layers');
  mkdirSync(layers, { recursive: true });
  // The emulator reads this on every call, from this process's environment.
  process.env.CIMFS_EMULATOR_ROOT = emulatorRoot;
  delete process.env.CIMFS_EMULATOR_LATENCY_MS;
  const redis = new Redis(redisUrl);
  redis.on('error', () => {}); // tests that restart Redis expect these
  const daemons: Daemon[] = [];
  const log = createLogger(process.env.CIMQ_TEST_LOG_LEVEL ?? 'error', { pretty: false });

  const env: TestEnv = {
    redisUrl, prefix, node, emulatorRoot, layers, redis,
    cim(file) {
      const p = path.join(layers, file);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, 'cim image');
      return p;
    },
    mountedVolumes() {
      try {
        return readdirSync(emulatorRoot).filter((n) => n.startsWith('Volume{')).sort();
      } catch {
        return [];
      }
    },
    config(over = {}) {
      return loadConfig({ redisUrl, prefix, node, threads: 2, backend: 'emulator', allowedRoots: layers, httpPort: 0, ...over }, {});
    },
    async startDaemon(over = {}) {
      const d = await startDaemon(env.config(over), { log });
      daemons.push(d);
      return d;
    },
    childEnv(extra = {}) {
      return {
        ...process.env, REDIS_URL: redisUrl, CIMQ_PREFIX: prefix, CIMQ_NODE: node,
        CIMFS_EMULATOR_ROOT: emulatorRoot, CIMQ_BACKEND: 'emulator', CIMQ_THREADS: '2', CIMQ_HTTP_PORT: '0', ...extra,
      };
    },
    async plainProducer() {
      const conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
      const eventsConn = new Redis(redisUrl, { maxRetriesPerRequest: null });
      const queue = new Queue(`{${node}}`, { connection: conn, prefix });
      const events = new QueueEvents(`{${node}}`, { connection: eventsConn, prefix });
      await events.waitUntilReady();
      return {
        queue,
        events,
        async close() {
          await events.close();
          await queue.close();
          await Promise.all([conn.quit(), eventsConn.quit()]);
        },
      };
    },
    async dispose() {
      await Promise.all(daemons.map((d) => d.close()));
      // Remove every key this file wrote, and only those.
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await redis.quit();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}
