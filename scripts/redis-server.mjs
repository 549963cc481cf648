// A private redis-server on a free loopback port, for the tests and the
// benchmark (which must not depend on, or disturb, a shared Redis).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** Whether a Redis answers PING at `url`, within a second. */
export async function redisAnswers(url) {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function haveRedisServer() {
  return !spawnSync('redis-server', ['--version']).error;
}

/**
 * Starts redis-server (no RDB snapshots; pass AOF options in `args`).
 * `stop()` ends it with SIGTERM, which flushes an AOF; `start()` starts it
 * again on the same port.
 */
export async function startRedisServer(args = [], port) {
  const p = port ?? (await freePort());
  const url = `redis://127.0.0.1:${p}`;
  let proc;
  const server = {
    url,
    port: p,
    async start() {
      proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', ...args], { stdio: 'ignore' });
      const failed = new Promise((resolve) => proc.once('error', resolve));
      for (let i = 0; i < 200; i++) {
        if (await redisAnswers(url)) return;
        const err = await Promise.race([failed, new Promise((r) => setTimeout(() => r(null), 25))]);
        if (err) throw new Error(`cannot start redis-server (${err.message}): install it (Debian: apt-get install redis-server) or set REDIS_URL`);
      }
      throw new Error(`redis-server on port ${p} does not answer`);
    },
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
  await server.start();
  return server;
}
