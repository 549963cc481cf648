// Redis connections. BullMQ needs maxRetriesPerRequest: null on the
// connections its workers use; start-up probes fail fast instead.
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from './config.js';

export function connect(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra });
}

export class RedisUnreachableError extends Error {
  override name = 'RedisUnreachableError';
}

/**
 * One PING with a short deadline and no retries, so a daemon or CLI started
 * without Redis says so at once, naming the URL it tried.
 */
export async function probe(url: string, timeoutMs = 3000): Promise<void> {
  const r = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  let last: Error | undefined;
  r.on('error', (err: Error) => (last = err)); // reported below
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    const cause = last ?? (err as Error);
    if (/WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(cause.message)) {
      throw new RedisUnreachableError(
        `Redis at ${redactUrl(url)} refused the credentials (${cause.message.split('\n')[0]}); ` +
          'check the user name and password in REDIS_URL / --redis-url (redis://user:password@host:port).',
      );
    }
    throw new RedisUnreachableError(
      `cannot reach Redis at ${redactUrl(url)} (${cause.message}). ` +
        'Start one with "docker compose up -d redis", or on Debian/Ubuntu "apt-get install redis-server" ' +
        '(it starts on 127.0.0.1:6379), or point REDIS_URL / --redis-url at yours.',
    );
  } finally {
    r.disconnect();
  }
}
