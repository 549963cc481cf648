// The mount cache in Redis: one hash per mount keyed `containerID_cimPath`,
// a set of each container's mounts, and an index of the node's mounts.
// Writes go only through the Lua scripts in ./lua (one atomic step each);
// only the processor calls them. Reads are plain commands, for anyone.
import type { RedisClient } from './redis.js';
import { LuaScripts } from './scripts.js';
import { cacheKeys, type CacheKeys } from './keys.js';
import type { MountEntry, MountState } from './contract.js';

/** Earlier jobs of the container are still pending: the job waits for them, then begins again. */
export interface Earlier { kind: 'earlier'; ids: string[] }

export type MountBegin =
  | Earlier
  | { kind: 'done'; result: string }
  | { kind: 'mounted'; flags: number }
  | { kind: 'mine'; flags: number }
  | { kind: 'conflict'; otherCimPath: string }
  | { kind: 'resumed' }
  | { kind: 'created' };

export type UnmountBegin =
  | Earlier
  | { kind: 'done'; result: string }
  | { kind: 'missing' }
  | { kind: 'unmounting'; volumeGuid: string; volumePath: string; previousState: MountState };

export interface MountIntent {
  containerId: string;
  cimPath: string;
  volumeGuid: string;
  volumePath: string;
  flags: number;
}

export function entryFromHash(key: string, h: Record<string, string>): MountEntry | null {
  if (!h.state) return null;
  return {
    key,
    containerId: h.containerId ?? '',
    cimPath: h.cimPath ?? '',
    volumeGuid: h.volumeGuid ?? '',
    volumePath: h.volumePath ?? '',
    flags: Number(h.flags ?? 0),
    state: h.state as MountState,
    ...(h.mountedAt ? { mountedAt: Number(h.mountedAt) } : {}),
    updatedAt: Number(h.updatedAt ?? 0),
    ...(h.jobId ? { jobId: h.jobId } : {}),
  };
}

export class MountCache {
  readonly keys: CacheKeys;
  private readonly scripts: LuaScripts;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    node: string,
  ) {
    this.keys = cacheKeys(prefix, node);
    this.scripts = new LuaScripts(redis);
  }

  private script(name: Parameters<LuaScripts['get']>[0]) {
    return this.scripts.get(name);
  }

  // ---- writes: the processor's state transitions ----

  /** Places the job in its container's order, then writes the intent unless earlier jobs are pending. */
  async beginMount(m: MountIntent, jobId: string, now = Date.now()): Promise<MountBegin> {
    const k = this.keys;
    const r = (await this.script('mountBegin')(
      k.mount(m.containerId, m.cimPath), k.container(m.containerId), k.index, k.job(jobId), k.pending(m.containerId),
      k.seq, k.active,
      m.containerId, m.cimPath, m.volumeGuid, m.volumePath, m.flags, now, jobId, k.job(''), k.pending(''),
    )) as string[];
    switch (r[0]) {
      case 'earlier': return { kind: 'earlier', ids: r.slice(1) };
      case 'done': return { kind: 'done', result: r[1]! };
      case 'mounted': return { kind: 'mounted', flags: Number(r[1]) };
      case 'mine': return { kind: 'mine', flags: Number(r[1]) };
      case 'conflict': return { kind: 'conflict', otherCimPath: r[1]! };
      case 'resumed': return { kind: 'resumed' };
      default: return { kind: 'created' };
    }
  }

  async commitMount(containerId: string, cimPath: string, jobId: string, result: unknown, now = Date.now()): Promise<boolean> {
    const k = this.keys;
    const r = await this.script('mountCommit')(k.mount(containerId, cimPath), k.job(jobId), k.pending(containerId),
      now, JSON.stringify(result), jobId);
    return r === 1;
  }

  async abortMount(containerId: string, cimPath: string): Promise<boolean> {
    const k = this.keys;
    const r = await this.script('mountAbort')(k.mount(containerId, cimPath), k.container(containerId), k.index);
    return r === 1;
  }

  /**
   * `endsJobOf` given (an unmount job): the job is placed in that container's
   * order first, and the step ends the job on 'done' or 'missing'.
   */
  async beginUnmountKey(mountKey: string, jobId: string, endsJobOf?: string, now = Date.now()): Promise<UnmountBegin> {
    const k = this.keys;
    const r = (await this.script('unmountBegin')(mountKey, k.job(jobId), k.pending(endsJobOf ?? ''), k.seq, k.active,
      now, jobId, endsJobOf ?? '', k.job(''), k.pending(''))) as string[];
    switch (r[0]) {
      case 'earlier': return { kind: 'earlier', ids: r.slice(1) };
      case 'done': return { kind: 'done', result: r[1]! };
      case 'missing': return { kind: 'missing' };
      default:
        return { kind: 'unmounting', volumeGuid: r[1]!, volumePath: r[2]!, previousState: r[3] as MountState };
    }
  }

  /** `result` undefined: the caller records the job's result itself later. */
  async finishUnmountKey(mountKey: string, containerId: string, jobId: string, result?: unknown): Promise<void> {
    const k = this.keys;
    await this.script('unmountFinish')(mountKey, k.container(containerId), k.index, k.job(jobId), k.pending(containerId),
      result === undefined ? '' : JSON.stringify(result), jobId);
  }

  async revertUnmountKey(mountKey: string, now = Date.now()): Promise<void> {
    await this.script('unmountRevert')(mountKey, now);
  }

  /** Records the result, and gives up the job's place in `containerId`'s order. */
  async recordResult(jobId: string, result: unknown, containerId = ''): Promise<void> {
    await this.script('recordResult')(this.keys.job(jobId), this.keys.pending(containerId), JSON.stringify(result), jobId);
  }

  /**
   * Places the job in its container's durable order (kept on redelivery),
   * together with any job taken off the queue before it that is not placed
   * yet; see lua/lib/order.lua. `containerId` is the container the processor
   * parsed, or '' to take it from the payload. Returns the container whose
   * order the job is in ('' for none) and that container's earlier jobs still
   * pending.
   */
  async claimOrder(jobId: string, containerId = ''): Promise<{ containerId: string; earlier: string[] }> {
    const k = this.keys;
    const r = (await this.script('orderClaim')(k.seq, k.active, jobId, k.job(''), k.pending(''), containerId)) as string[];
    return { containerId: r[0] ?? '', earlier: r.slice(1) };
  }

  async releaseOrder(containerId: string, ...jobIds: string[]): Promise<void> {
    if (jobIds.length) await this.script('orderRelease')(this.keys.pending(containerId), ...jobIds);
  }

  /** Resolves an interrupted entry; see reconcile-entry.lua. */
  async reconcileEntry(e: MountEntry, outcome: 'mounted' | 'deleted', unmountResult?: unknown, now = Date.now()): Promise<boolean> {
    const k = this.keys;
    const r = await this.script('reconcileEntry')(e.key, k.container(e.containerId), k.index, k.job(e.jobId ?? ''),
      e.state, outcome, now, unmountResult === undefined ? '' : JSON.stringify(unmountResult),
      unmountResult === undefined ? '' : e.volumePath);
    return r === 1;
  }

  // ---- reads ----

  /**
   * What is recorded of a job's effects: its result once complete, and a
   * volume that a start-up reconcile found dismounted on its behalf.
   */
  async jobRecord(jobId: string): Promise<{ result: string | null; dismounted: string | null }> {
    const [result, dismounted] = await this.redis.hmget(this.keys.job(jobId), 'cimqResult', 'cimqDismounted');
    return { result: result ?? null, dismounted: dismounted ?? null };
  }

  async get(containerId: string, cimPath: string): Promise<MountEntry | null> {
    return this.getKey(this.keys.mount(containerId, cimPath));
  }

  async getKey(key: string): Promise<MountEntry | null> {
    return entryFromHash(key, await this.redis.hgetall(key));
  }

  async containerMountKeys(containerId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.container(containerId));
  }

  /** Entries of the node by state; chunked pipelines, so a large node never blocks Redis. */
  async stateCounts(): Promise<Record<string, number>> {
    const keys = await this.redis.smembers(this.keys.index);
    const counts: Record<string, number> = {};
    for (let i = 0; i < keys.length; i += 1000) {
      const pipe = this.redis.pipeline();
      for (const key of keys.slice(i, i + 1000)) pipe.hget(key, 'state');
      for (const [err, state] of (await pipe.exec()) ?? []) {
        if (!err && typeof state === 'string') counts[state] = (counts[state] ?? 0) + 1;
      }
    }
    return counts;
  }

  /** Every entry of the node, or of one container; sorted by container, path. */
  async list(filter: { containerId?: string } = {}): Promise<MountEntry[]> {
    const keys = filter.containerId
      ? await this.containerMountKeys(filter.containerId)
      : await this.redis.smembers(this.keys.index);
    const entries: MountEntry[] = [];
    // Bounded pipelines keep one huge node from building one huge reply.
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const pipe = this.redis.pipeline();
      for (const key of chunk) pipe.hgetall(key);
      const replies = (await pipe.exec()) ?? [];
      replies.forEach(([err, h], j) => {
        if (err) throw err;
        const e = entryFromHash(chunk[j]!, h as Record<string, string>);
        if (e) entries.push(e);
      });
    }
    return entries.sort((a, b) => a.containerId.localeCompare(b.containerId) || a.cimPath.localeCompare(b.cimPath));
  }
}
