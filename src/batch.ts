// Batch cleanup: many containers in one job, or every container of the node
// but the live ones (the usual call after a runtime crash). Containers are
// cleaned several at a time, each inside its own container's ordered
// section; one failure never stops the rest; progress is reported as it goes.
import type { BatchCleanupResult, BatchProgress } from './contract.js';
import { CimqError } from './errors.js';
import { volumeGuid, volumePath } from './guid.js';

export interface BatchDeps {
  /** Cleans one container (cached mounts and its deterministic volume); returns the volume paths dismounted. */
  cleanContainer(containerId: string): Promise<string[]>;
  /** What cleanContainer would dismount, changing nothing. */
  planContainer(containerId: string): Promise<string[]>;
  /** Dismounts a volume no known container owns. */
  dismountVolume(volumeGuid: string): Promise<void>;
  /** Containers the cache knows on this node. */
  cachedContainers(): Promise<string[]>;
  /** Every CimFS volume mounted now, or null where the backend cannot list them. */
  listVolumes(): Promise<string[] | null>;
  progress(p: BatchProgress): Promise<void>;
  /** Containers cleaned at once. */
  parallel: number;
}

type Target = { kind: 'container'; containerId: string } | { kind: 'volume'; volumeGuid: string };

/** Containers to clean, and volumes of no known container, for "all except these". */
export async function allExceptTargets(live: string[], deps: BatchDeps): Promise<Target[]> {
  const keep = new Set(live);
  const containers = (await deps.cachedContainers()).filter((id) => !keep.has(id));
  // Volumes the cache never saw: neither a live container's nor one being cleaned.
  const known = new Set([...live, ...containers].map(volumeGuid));
  const listed = (await deps.listVolumes()) ?? [];
  return [
    ...containers.map((containerId) => ({ kind: 'container' as const, containerId })),
    ...listed.filter((g) => !known.has(g)).map((g) => ({ kind: 'volume' as const, volumeGuid: g })),
  ];
}

export function containerTargets(ids: string[]): Target[] {
  return [...new Set(ids)].map((containerId) => ({ kind: 'container' as const, containerId }));
}

export async function runBatch(targets: Target[], dryRun: boolean, deps: BatchDeps): Promise<BatchCleanupResult> {
  const result: BatchCleanupResult = { dryRun, total: targets.length, unmounted: [], failures: [] };
  let done = 0;
  let lastReport = 0;
  const report = async (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastReport < 200) return;
    lastReport = now;
    await deps.progress({ done, total: targets.length, failed: result.failures.length });
  };
  await report(true);

  const one = async (t: Target) => {
    const containerId = t.kind === 'container' ? t.containerId : null;
    const guid = t.kind === 'container' ? volumeGuid(t.containerId) : t.volumeGuid;
    try {
      if (t.kind === 'container') {
        const vols = dryRun ? await deps.planContainer(t.containerId) : await deps.cleanContainer(t.containerId);
        for (const v of vols) result.unmounted.push({ containerId, volumeGuid: guid, volumePath: v });
      } else {
        if (!dryRun) await deps.dismountVolume(t.volumeGuid);
        result.unmounted.push({ containerId: null, volumeGuid: guid, volumePath: volumePath(guid) });
      }
    } catch (err) {
      const e = err instanceof CimqError ? err : new CimqError('INTERNAL', (err as Error).message);
      result.failures.push({ containerId, volumeGuid: guid, code: e.code, message: e.detail, ...(e.hresult === undefined ? {} : { hresult: e.hresult }) });
    }
    done++;
    await report(false);
  };

  // A fixed number of lanes pulling from one list keeps every pool thread busy.
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(deps.parallel, targets.length)) }, async () => {
    while (next < targets.length) await one(targets[next++]!);
  });
  await Promise.all(lanes);
  await report(true);
  return result;
}
