// Start-up reconcile: resolves cache entries that a daemon which died
// mid-call left 'mounting' or 'unmounting', and drops 'mounted' entries whose
// volume is gone (a reboot), by asking the backend whether the volume is mounted — as containerd's mount manager checks the real mount
// before trusting its record. Runs while this daemon holds the node lease and
// before it takes any job, so no job of the dead daemon is still running.
import type { RedisClient } from './redis.js';
import type { Logger } from 'pino';
import type { MountCache } from './cache.js';
import type { UnmountResult } from './contract.js';
import type { NativePool } from './pool.js';

export interface ReconcileReport {
  checked: number;
  /** 'mounted' entries whose volume is gone (the node rebooted, or someone dismounted it). */
  vanished: number;
  /** Entries whose interrupted call had done its work. */
  completed: number;
  /** Entries whose interrupted call had not happened (mount) or not finished (unmount reverted). */
  rolledBack: number;
}

export async function reconcile(cache: MountCache, pool: NativePool, log: Logger): Promise<ReconcileReport> {
  const report: ReconcileReport = { checked: 0, vanished: 0, completed: 0, rolledBack: 0 };
  const entries = await cache.list();
  if (entries.length === 0) return report;
  // One listing where the backend has one, instead of a pool call per entry:
  // start-up stays short on a node with many cached mounts.
  const listed = await pool.listVolumes();
  const mountedNow = listed ? new Set(listed) : null;
  for (const e of entries) {
    report.checked++;
    const mounted = mountedNow ? mountedNow.has(e.volumeGuid) : await pool.isMounted(e.volumeGuid);
    if (e.state === 'mounted') {
      if (mounted) continue;
      // Kernel mounts do not survive a reboot; the cache must not claim them.
      await cache.reconcileEntry(e, 'deleted');
      report.vanished++;
      log.warn({ containerId: e.containerId, volumeGuid: e.volumeGuid, cimPath: e.cimPath },
        'a cached volume is no longer mounted (node rebooted?); entry removed');
      continue;
    }
    // Mounted now: a mount that had happened, or a dismount that had not.
    const outcome = mounted ? 'mounted' : 'deleted';
    const didItsWork = (e.state === 'mounting') === mounted;
    if (didItsWork) report.completed++;
    else report.rolledBack++;
    const result: UnmountResult | undefined = e.state === 'unmounting' && !mounted
      ? { volumePath: e.volumePath, volumeGuid: e.volumeGuid, containerId: e.containerId, cimPath: e.cimPath }
      : undefined;
    await cache.reconcileEntry(e, outcome, result);
    log.info({ containerId: e.containerId, volumeGuid: e.volumeGuid, cimPath: e.cimPath, was: e.state, now: outcome, jobId: e.jobId },
      'reconciled an interrupted cache entry');
  }
  return report;
}

/**
 * Jobs a dead daemon had taken off the queue are still in the active list,
 * in the order they were taken, until BullMQ's stalled check puts them back
 * (in no particular order). Placing the newest places every unplaced one
 * before it, oldest first (lua/lib/order.lua), which keeps one container's jobs
 * in order across the crash.
 */
export async function placeOrphans(redis: RedisClient, cache: MountCache): Promise<number> {
  const [newest] = await redis.lrange(cache.keys.active, 0, 0);
  if (newest !== undefined) await cache.claimOrder(newest);
  return redis.llen(cache.keys.active);
}
