// Global setup: tests need a real Redis. Use REDIS_URL (default
// 127.0.0.1:6379) when it answers; otherwise start a private redis-server on
// a free loopback port for this run and stop it afterwards.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

async function answers(url: string): Promise<boolean> {
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

let server: ChildProcess | undefined;

export async function setup(project: TestProject): Promise<void> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await answers(url)) {
    project.provide('redisUrl', url);
    return;
  }
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error(`No Redis answers at ${url} and redis-server is not on PATH. ` +
      'Install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL to a Redis you can use for tests.');
  }
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const privateUrl = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await answers(privateUrl)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await answers(privateUrl))) throw new Error(`started redis-server on port ${port}, but it does not answer`);
  project.provide('redisUrl', privateUrl);
}

export async function teardown(): Promise<void> {
  server?.kill('SIGTERM');
}
