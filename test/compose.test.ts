// docker-compose.yml: Redis as BullMQ's production guide asks, and the daemon
// on the emulator backend with its HTTP port. Checked by `docker compose
// config` (no engine needed) and structurally.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { parse } from 'yaml';

const FILE = path.resolve(import.meta.dirname, '../docker-compose.yml');

interface Service { command?: string[]; environment?: Record<string, string>; ports?: string[]; healthcheck?: unknown; depends_on?: unknown; stop_grace_period?: string }

it('configures Redis for BullMQ in production and the daemon on the emulator backend', () => {
  const compose = parse(readFileSync(FILE, 'utf8')) as { services: Record<string, Service> };
  const redis = compose.services.redis!;
  expect(redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction']));
  expect(redis.ports).toEqual(['127.0.0.1:6379:6379']);
  const cimq = compose.services.cimq!;
  expect(cimq.environment).toMatchObject({ CIMQ_BACKEND: 'emulator', REDIS_URL: 'redis://redis:6379', CIMQ_HTTP_PORT: '9540' });
  expect(cimq.ports).toEqual(['127.0.0.1:9540:9540']);
  expect(cimq.healthcheck).toBeDefined();
  // Longer than the daemon's default shutdown timeout (30 s), so SIGTERM can finish running calls.
  expect(Number.parseInt(cimq.stop_grace_period ?? '0', 10)).toBeGreaterThan(30);
});

/** `docker compose` (the plugin) where installed, else Debian's docker-compose. */
function composeCommand(): string[] | null {
  const plugin = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (!plugin.error && plugin.status === 0) return ['docker', 'compose'];
  const v1 = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
  return !v1.error && v1.status === 0 ? ['docker-compose'] : null;
}

it('passes `docker compose config`', () => {
  const cmd = composeCommand();
  if (!cmd) throw new Error('no Docker compose client: install one (Debian: apt-get install docker-compose) to check docker-compose.yml');
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), '-f', FILE, 'config', '--quiet'], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});
