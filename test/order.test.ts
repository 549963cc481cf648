// The durable per-container order (src/lua/lib/order.lua), driven on a real
// Redis with an active list laid out as BullMQ leaves it: newest on the left,
// `ats` counting each job's activations. No daemon: the script alone.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MountCache } from '../dist/src/cache.js';
import { createTestEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let cache: MountCache;

beforeAll(async () => {
  env = await createTestEnv('order');
  cache = new MountCache(env.redis, env.prefix, env.node);
});
afterAll(async () => {
  await env.dispose();
});
beforeEach(async () => {
  const keys = await env.redis.keys(`${env.prefix}:*`);
  if (keys.length) await env.redis.del(...keys);
});

/** Jobs activated oldest first, as BullMQ's moveToActive does (LPUSH, ats + 1). */
async function activate(...jobs: { id: string; name?: string; data: unknown }[]): Promise<void> {
  for (const j of jobs) {
    const key = cache.keys.job(j.id);
    await env.redis.hset(key, 'name', j.name ?? 'mount', 'data', typeof j.data === 'string' ? j.data : JSON.stringify(j.data));
    await env.redis.hincrby(key, 'ats', 1);
    await env.redis.lpush(cache.keys.active, j.id);
  }
}

const seqOf = async (id: string) => Number(await env.redis.hget(cache.keys.job(id), 'cimqSeq'));
const pending = (containerId: string) => env.redis.zrange(cache.keys.pending(containerId), 0, -1);

describe('placing a job in its container\'s order', () => {
  it('places every job taken before it first, oldest first, whatever order the processor sees them in', async () => {
    await activate(
      { id: '1', data: { containerId: 'a' } },
      { id: '2', name: 'unmount', data: { containerId: 'b' } },
      { id: '3', name: 'unmount', data: { containerId: 'a' } },
      { id: '4', name: 'cleanup', data: { containerId: 'a' } },
    );
    // The processor sees job 3 first: 1 and 2 were taken before it, 4 after.
    expect(await cache.claimOrder('3', 'a')).toEqual({ containerId: 'a', earlier: ['1'] });
    expect([await seqOf('1'), await seqOf('2'), await seqOf('3')]).toEqual([1, 2, 3]);
    expect(await env.redis.hexists(cache.keys.job('4'), 'cimqSeq')).toBe(0);
    expect(await pending('a')).toEqual(['1', '3']);
    expect(await pending('b')).toEqual(['2']);

    // Then 4, then 1 (already placed: nothing moves), then 2.
    expect(await cache.claimOrder('4', 'a')).toEqual({ containerId: 'a', earlier: ['1', '3'] });
    expect(await cache.claimOrder('1', 'a')).toEqual({ containerId: 'a', earlier: [] });
    expect(await cache.claimOrder('2', 'b')).toEqual({ containerId: 'b', earlier: [] });
    expect(await seqOf('4')).toBe(4);
    expect(await env.redis.get(cache.keys.seq)).toBe('4');
  });

  it('walks only the jobs taken since the last placement', async () => {
    await activate({ id: '1', data: { containerId: 'a' } }, { id: '2', data: { containerId: 'b' } });
    // Lay out a list the invariant would not allow (an unplaced job older
    // than a placed one) to see where the walk stops: at the placed job.
    await env.redis.lrem(cache.keys.active, 0, '1');
    await cache.claimOrder('2', 'b');
    await env.redis.rpush(cache.keys.active, '1');
    await activate({ id: '3', data: { containerId: 'a' } });
    expect(await cache.claimOrder('3', 'a')).toEqual({ containerId: 'a', earlier: [] });
    expect(await seqOf('3')).toBe(2);
    expect(await env.redis.hexists(cache.keys.job('1'), 'cimqSeq')).toBe(0);
  });

  it('takes the container from the payload for a job it places on another\'s behalf, and none from a bad payload', async () => {
    await activate(
      { id: '1', data: '{not json' },
      { id: '2', data: { containerId: 'bad..id' } },
      { id: '3', data: { containerId: 'x'.repeat(77) } },
      { id: '4', name: 'cleanup-batch', data: { containerIds: ['a'] } },
      { id: '5', data: { containerId: 'ok-1.a_b' } },
      { id: '6', data: { containerId: 'ok-1.a_b' } },
    );
    expect(await cache.claimOrder('6', 'ok-1.a_b')).toEqual({ containerId: 'ok-1.a_b', earlier: ['5'] });
    for (const id of ['1', '2', '3', '4']) {
      expect(await env.redis.hget(cache.keys.job(id), 'cimqOrder'), id).toBe('');
      expect(await seqOf(id), id).toBe(Number(id));
    }
    // An invalid job's own claim says it is in no order; nothing else was created.
    expect(await cache.claimOrder('2')).toEqual({ containerId: '', earlier: [] });
    const pendingKeys = await env.redis.keys(`${cache.keys.pending('')}*`);
    expect(pendingKeys).toEqual([cache.keys.pending('ok-1.a_b')]);
  });

  it('keeps a redelivered job\'s place, and the processor\'s parse wins over the payload reading', async () => {
    await activate({ id: '1', data: { containerId: 'a' } }, { id: '2', data: { containerId: 'a' } });
    await cache.claimOrder('2', 'a');
    // Job 1 is redelivered (a dead daemon's job, back through the wait list) after 3 was taken.
    await activate({ id: '3', data: { containerId: 'a' } });
    await env.redis.lrem(cache.keys.active, 0, '1');
    await activate({ id: '1', data: { containerId: 'a' } });
    expect(await cache.claimOrder('1', 'a')).toEqual({ containerId: 'a', earlier: [] });
    expect(await seqOf('1')).toBe(1);
    expect(await seqOf('3')).toBe(3);
    expect(await pending('a')).toEqual(['1', '2', '3']);

    // Should the parsed container differ from the payload's reading, the job moves.
    expect(await cache.claimOrder('3', 'c')).toEqual({ containerId: 'c', earlier: [] });
    expect(await pending('a')).toEqual(['1', '2']);
    expect(await pending('c')).toEqual(['3']);
  });

  it('leaves a 10 MB payload unread', async () => {
    await activate({ id: '1', data: { containerId: 'a', pad: 'x'.repeat(10 * 1024 * 1024) } }, { id: '2', data: { containerId: 'a' } });
    expect(await cache.claimOrder('2', 'a')).toEqual({ containerId: 'a', earlier: [] });
    expect(await env.redis.hget(cache.keys.job('1'), 'cimqOrder')).toBe('');
  });
});
