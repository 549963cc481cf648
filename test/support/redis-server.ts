// A private redis-server on a loopback port, for tests that must restart
// Redis or change its configuration without touching a shared server.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export async function redisAnswers(url: string): Promise<boolean> {
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function haveRedisServer(): boolean {
  return !spawnSync('redis-server', ['--version']).error;
}

export interface RedisServer {
  url: string;
  port: number;
  /** SHUTDOWN (so an AOF is flushed) and wait for the process to end. */
  stop(): Promise<void>;
  /** Start again on the same port and directory. */
  start(): Promise<void>;
}

export async function startRedisServer(args: string[] = [], port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const url = `redis://127.0.0.1:${p}`;
  let proc: ChildProcess | undefined;
  const server: RedisServer = {
    url,
    port: p,
    async start() {
      proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', ...args], { stdio: 'ignore' });
      for (let i = 0; i < 200 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 25));
      if (!(await redisAnswers(url))) throw new Error(`redis-server on port ${p} does not answer`);
    },
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.kill('SIGTERM'); // redis-server shuts down cleanly on SIGTERM, flushing its AOF
      await exited;
    },
  };
  await server.start();
  return server;
}
