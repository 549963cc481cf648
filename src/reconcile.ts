// Start-up reconcile: resolves cache entries that a daemon which died
// mid-call left 'mounting' or 'unmounting', by asking the backend whether the
// volume is mounted — as containerd's mount manager checks the real mount
// before trusting its record. Runs while this daemon holds the node lease and
// before it takes any job, so no job of the dead daemon is still running.
import type { Logger } from 'pino';
import type { MountCache } from './cache.js';
import type { UnmountResult } from './contract.js';
import type { NativePool } from './pool.js';

export interface ReconcileReport {
  checked: number;
  /** Entries whose interrupted call had done its work. */
  completed: number;
  /** Entries whose interrupted call had not happened (mount) or not finished (unmount reverted). */
  rolledBack: number;
}

export async function reconcile(cache: MountCache, pool: NativePool, log: Logger): Promise<ReconcileReport> {
  const report: ReconcileReport = { checked: 0, completed: 0, rolledBack: 0 };
  const entries = (await cache.list()).filter((e) => e.state !== 'mounted');
  for (const e of entries) {
    report.checked++;
    const mounted = await pool.isMounted(e.volumeGuid);
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
