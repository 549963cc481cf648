// Helpers for the benchmark: a private Redis, stats, and waiting for jobs.
import { startRedisServer } from '../scripts/redis-server.mjs';

/** A redis-server of our own on a free loopback port, without persistence. */
export async function privateRedis() {
  const server = await startRedisServer(['--appendonly', 'no']);
  return { url: server.url, stop: () => server.stop() };
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
