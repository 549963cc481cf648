// Helpers for the benchmark: a private Redis, stats, and waiting for jobs.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

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

/** A redis-server of our own on a free loopback port, without persistence. */
export async function privateRedis() {
  const port = await new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  proc.on('error', (err) => { console.error(`bench: cannot start redis-server (${err.message}); install it or set REDIS_URL`); process.exit(2); });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 25));
  return { url, stop: () => proc.kill('SIGTERM') };
}

export function summarize(values) {
  const v = [...values].sort((a, b) => a - b);
  return { runs: v.length, min: v[0], median: v[Math.floor((v.length - 1) / 2)], max: v.at(-1) };
}

export function percentile(values, p) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
}

/** Resolves when `n` jobs of the queue have completed or failed. */
export async function waitFinished(queue, n, timeoutMs = 600_000) {
  const start = Date.now();
  for (;;) {
    const c = await queue.getJobCounts('completed', 'failed');
    if (c.completed + c.failed >= n) return c;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out: ${JSON.stringify(c)} of ${n}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function deletePrefix(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
    cursor = next;
  } while (cursor !== '0');
}
