// Global setup: tests need a real Redis. Use REDIS_URL (default
// 127.0.0.1:6379) when it answers; otherwise start a private redis-server on
// a free loopback port for this run and stop it afterwards.
import type { TestProject } from 'vitest/node';
import { haveRedisServer, redisAnswers, startRedisServer, type RedisServer } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

let server: RedisServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await redisAnswers(url)) {
    project.provide('redisUrl', url);
    return;
  }
  if (!haveRedisServer()) {
    throw new Error(`No Redis answers at ${url} and redis-server is not on PATH. ` +
      'Install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL to a Redis you can use for tests.');
  }
  server = await startRedisServer(['--appendonly', 'no']);
  project.provide('redisUrl', server.url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
