// The job processor: validates a job, orders it behind earlier jobs of the
// same container, writes the intent to the cache, runs the native call on
// the pool, and writes the outcome. It is the only writer of the cache.
import { trace } from '@opentelemetry/api';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { HRESULT } from '../native/hresult.js';
import type { MountCache } from './cache.js';
import type {
  BatchCleanupResult, CleanupRequest, CleanupResult, MountRequest, MountResult, ParsedJob, UnmountRequest, UnmountResult,
} from './contract.js';
import { allExceptTargets, containerTargets, runBatch, type BatchDeps } from './batch.js';
import { CimqError, describeHresult, isTransientHresult } from './errors.js';
import { volumeGuid, volumePath } from './guid.js';
import { NativeDeadlineError, type NativePool } from './pool.js';
import type { NativeResult } from '../workers/native-task.js';
import { KeyedSerializer } from './serial.js';
import type { Validator } from './validate.js';

export interface ProcessorDeps {
  cache: MountCache;
  pool: NativePool;
  validator: Validator;
  log: Logger;
  /** A job's BullMQ state ('completed', 'failed', 'unknown', 'waiting', …). */
  jobState: (jobId: string) => Promise<string>;
  /** The queue's active list: the order in which jobs were taken off the queue. */
  activeKey: string;
  /** Longest wait for jobs taken earlier to take their places first. */
  placeWaitMs?: number;
  /** How long a job waits before looking again for an earlier job of its container. */
  orderRetryMs?: number;
}

type AnyResult = MountResult | UnmountResult | CleanupResult | BatchCleanupResult;

/** Errors BullMQ must not retry become UnrecoverableError with the same message. */
function toJobError(err: unknown): Error {
  if (err instanceof CimqError) return err.permanent ? new UnrecoverableError(err.message) : new Error(err.message);
  const message = err instanceof Error ? err.message : String(err);
  // Redis or pool trouble: worth a retry, and the reason still leads with a code.
  return new Error(`INTERNAL: ${message}`);
}

function nativeError(op: 'Mount' | 'Unmount', subject: string, guid: string, hr: number): CimqError {
  const what = describeHresult(hr);
  if (op === 'Mount' && (hr === HRESULT.FILE_NOT_FOUND || hr === HRESULT.PATH_NOT_FOUND)) {
    return new CimqError('IMAGE_NOT_FOUND', `cim Mount ${subject} ${guid}: ${what}; check that the cim file exists on this node`, hr);
  }
  const retry = isTransientHresult(hr);
  return new CimqError('CIMFS_ERROR', `cim ${op} ${subject} ${guid}: ${what}${retry ? '; will retry' : ''}`, hr, !retry);
}

function deadlineError(op: 'Mount' | 'Unmount', subject: string, guid: string, err: NativeDeadlineError): CimqError {
  return new CimqError('NATIVE_TIMEOUT',
    `cim ${op} ${subject} ${guid}: the CimFS call did not return within ${err.deadlineMs} ms; it is still running on a pool thread ` +
    'and its outcome will be recorded when it returns; check the node\'s CimFS driver (cimq health lists stuck calls)');
}

/** Whether BullMQ will run this job again after this attempt fails. */
function willRetry(job: Job, err: Error): boolean {
  if (err instanceof UnrecoverableError) return false;
  return job.attemptsMade + 1 < (job.opts.attempts ?? 1);
}

export function createProcessor({ cache, pool, validator, log, jobState, activeKey, orderRetryMs = 200, placeWaitMs = 5000 }: ProcessorDeps) {
  const serial = new KeyedSerializer();
  /**
   * Jobs whose section finished here and that gave up their place: a later
   * job of the same container need not ask Redis about them again. Bounded;
   * forgetting one only costs a look-up.
   */
  const finishedHere = new Set<string>();
  /** Wakes jobs waiting for earlier-taken jobs to take their places. */
  let wakers: (() => void)[] = [];
  const placed = () => {
    const w = wakers;
    wakers = [];
    for (const f of w) f();
  };
  const nextPlacement = (ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    wakers.push(() => {
      clearTimeout(t);
      resolve();
    });
  });
  const finished = (jobId: string) => {
    finishedHere.add(jobId);
    if (finishedHere.size > 10_000) finishedHere.delete(finishedHere.values().next().value!);
  };

  async function mount(job: Job, req: Required<MountRequest>): Promise<MountResult> {
    const { containerId, cimPath, flags } = req;
    const guid = volumeGuid(containerId);
    const vol = volumePath(guid);
    const jobId = job.id!;
    const begin = await cache.beginMount({ containerId, cimPath, volumeGuid: guid, volumePath: vol, flags }, jobId);
    const result = (already: boolean, f: number): MountResult => ({
      volumePath: vol, volumeGuid: guid, containerId, cimPath, flags: f, alreadyMounted: already,
    });
    switch (begin.kind) {
      case 'done':
        return JSON.parse(begin.result) as MountResult;
      case 'mine':
        return result(false, begin.flags);
      case 'mounted':
        return result(true, begin.flags);
      case 'conflict':
        throw new CimqError('VOLUME_IN_USE',
          `cim Mount ${cimPath} ${guid}: container ${containerId} already has ${begin.otherCimPath} mounted on this volume; unmount it first`);
    }
    const resumed = begin.kind === 'resumed';
    const succeeded = (hr: number) => hr === HRESULT.S_OK || (hr === HRESULT.ALREADY_EXISTS && resumed);
    let native: NativeResult;
    try {
      native = await pool.mount(cimPath, guid, flags);
    } catch (err) {
      if (!(err instanceof NativeDeadlineError)) throw err; // outcome unknown: the entry stays 'mounting' for the retry
      // Record the outcome when the call finally returns, if nothing moved the entry on.
      void err.late.then(async (late) => {
        const e = await cache.get(containerId, cimPath);
        if (e?.state !== 'mounting' || e.jobId !== jobId) return;
        if (succeeded(late.hresult)) await cache.commitMount(containerId, cimPath, jobId, result(false, flags));
        else await cache.abortMount(containerId, cimPath);
        log.warn({ jobId, containerId, volumeGuid: guid, hresult: late.hresult, nativeMs: late.ms }, 'a stuck mount call returned');
      }).catch((e: Error) => log.error({ jobId, err: e.message }, 'recording a stuck mount call failed'));
      throw deadlineError('Mount', cimPath, guid, err);
    }
    if (!succeeded(native.hresult)) {
      await cache.abortMount(containerId, cimPath);
      if (native.hresult === HRESULT.ALREADY_EXISTS) {
        throw new CimqError('VOLUME_IN_USE',
          `cim Mount ${cimPath} ${guid}: volume already mounted but not in the cache (left by a crashed process or another tool); run "cimq cleanup ${containerId}" first`,
          native.hresult);
      }
      throw nativeError('Mount', cimPath, guid, native.hresult);
    }
    const res = result(false, flags);
    if (!(await cache.commitMount(containerId, cimPath, jobId, res))) {
      throw new Error(`cache entry for ${containerId}_${cimPath} changed during the mount; is a second daemon running for this node?`);
    }
    log.info({ jobId, containerId, volumeGuid: guid, cimPath, nativeMs: native.ms }, 'mounted');
    return res;
  }

  /** Dismounts; a volume that is already gone counts as dismounted. */
  async function dismount(subject: string, guid: string, onLate?: (hr: number) => Promise<void>): Promise<void> {
    let native: NativeResult;
    try {
      native = await pool.dismount(guid);
    } catch (err) {
      if (!(err instanceof NativeDeadlineError)) throw err;
      if (onLate) void err.late.then((late) => onLate(late.hresult)).catch(() => undefined);
      throw deadlineError('Unmount', subject, guid, err);
    }
    if (native.hresult !== HRESULT.S_OK && native.hresult !== HRESULT.FILE_NOT_FOUND) {
      throw nativeError('Unmount', subject, guid, native.hresult);
    }
  }

  async function unmountKey(key: string, containerId: string, subject: string, jobId: string,
    result?: (guid: string, vol: string) => UnmountResult): Promise<{ done?: string; volumePath?: string } | null> {
    const begin = await cache.beginUnmountKey(key, jobId, result ? containerId : undefined);
    if (begin.kind === 'done') return { done: begin.result };
    if (begin.kind === 'missing') return null;
    const settle = async (hr: number) => {
      if (hr === HRESULT.S_OK || hr === HRESULT.FILE_NOT_FOUND) {
        await cache.finishUnmountKey(key, containerId, jobId, result?.(begin.volumeGuid, begin.volumePath));
      } else {
        await cache.revertUnmountKey(key);
      }
    };
    try {
      await dismount(subject, begin.volumeGuid, async (hr) => {
        const e = await cache.getKey(key);
        if (e?.state === 'unmounting' && e.jobId === jobId) await settle(hr);
      });
    } catch (err) {
      if (err instanceof CimqError && err.code !== 'NATIVE_TIMEOUT') await cache.revertUnmountKey(key);
      throw err;
    }
    await cache.finishUnmountKey(key, containerId, jobId, result?.(begin.volumeGuid, begin.volumePath));
    return { volumePath: begin.volumePath };
  }

  async function unmount(job: Job, req: UnmountRequest): Promise<UnmountResult> {
    const { containerId, cimPath } = req;
    const key = cache.keys.mount(containerId, cimPath);
    const make = (guid: string, vol: string): UnmountResult => ({ volumePath: vol, volumeGuid: guid, containerId, cimPath });
    const r = await unmountKey(key, containerId, cimPath, job.id!, make);
    if (!r) throw new CimqError('NOT_MOUNTED', `cim ${cimPath} not mounted for container ${containerId}; nothing to unmount ("cimq ls" lists mounts)`);
    if (r.done) return JSON.parse(r.done) as UnmountResult;
    const guid = volumeGuid(containerId);
    log.info({ jobId: job.id, containerId, volumeGuid: guid, cimPath }, 'unmounted');
    return make(guid, r.volumePath!);
  }

  /**
   * Unmounts every cached mount of the container, then its deterministic
   * volume if still mounted — the seed's fallback for mounts made by a
   * process whose cache is gone (hcsshim, or cimq before a lost Redis).
   */
  async function cleanContainer(containerId: string, jobId: string, dismounted: string | null = null): Promise<string[]> {
    const unmounted = new Set<string>(dismounted ? [dismounted] : []);
    const keyPrefix = cache.keys.mount(containerId, '');
    for (const key of await cache.containerMountKeys(containerId)) {
      const r = await unmountKey(key, containerId, key.slice(keyPrefix.length), jobId);
      if (r?.volumePath) unmounted.add(r.volumePath);
    }
    const guid = volumeGuid(containerId);
    const vol = volumePath(guid);
    if (!unmounted.has(vol) && (await pool.isMounted(guid))) {
      await dismount(containerId, guid);
      unmounted.add(vol);
    }
    return [...unmounted];
  }

  /** What cleanContainer would dismount. */
  async function planContainer(containerId: string): Promise<string[]> {
    const vols = new Set((await cache.list({ containerId })).map((e) => e.volumePath));
    const guid = volumeGuid(containerId);
    if (!vols.has(volumePath(guid)) && (await pool.isMounted(guid))) vols.add(volumePath(guid));
    return [...vols];
  }

  async function cleanup(job: Job, req: CleanupRequest): Promise<CleanupResult> {
    const { containerId } = req;
    const jobId = job.id!;
    const recorded = await cache.jobRecord(jobId);
    if (recorded.result) {
      await cache.releaseOrder(containerId, jobId);
      return JSON.parse(recorded.result) as CleanupResult;
    }
    const res: CleanupResult = { containerId, unmounted: await cleanContainer(containerId, jobId, recorded.dismounted) };
    await cache.recordResult(jobId, res, containerId);
    log.info({ jobId, containerId, volumeGuid: volumeGuid(containerId), unmounted: res.unmounted.length }, 'cleaned up');
    return res;
  }

  async function batch(job: Job, parsed: ParsedJob): Promise<BatchCleanupResult> {
    const jobId = job.id!;
    const recorded = await cache.jobRecord(jobId);
    if (recorded.result) return JSON.parse(recorded.result) as BatchCleanupResult;
    const deps: BatchDeps = {
      // Each container in its own ordered section, behind that container's earlier jobs here.
      cleanContainer: (id) => serial.run(id, () => cleanContainer(id, jobId)),
      planContainer,
      dismountVolume: (guid) => dismount('(unknown container)', guid),
      cachedContainers: async () => [...new Set((await cache.list()).map((e) => e.containerId))],
      listVolumes: () => pool.listVolumes(),
      progress: (p) => job.updateProgress(p),
      parallel: pool.threads,
    };
    const dryRun = 'dryRun' in parsed.data && parsed.data.dryRun === true;
    const targets = parsed.name === 'cleanup-all-except'
      ? await allExceptTargets(parsed.data.liveContainerIds, deps)
      : containerTargets((parsed.data as { containerIds: string[] }).containerIds);
    const res = await runBatch(targets, dryRun, deps);
    if (!dryRun) await cache.recordResult(jobId, res);
    log.info({ jobId, job: parsed.name, dryRun, total: res.total, unmounted: res.unmounted.length, failed: res.failures.length }, 'batch cleanup done');
    return res;
  }

  function apply(job: Job, parsed: ParsedJob): Promise<AnyResult> {
    switch (parsed.name) {
      case 'mount': return mount(job, parsed.data);
      case 'unmount': return unmount(job, parsed.data);
      case 'cleanup': return cleanup(job, parsed.data);
      default: return batch(job, parsed);
    }
  }

  /**
   * Takes this job's place in its container's durable order. BullMQ can hand
   * jobs to the processor in another order than it took them off the queue,
   * so a job waits (briefly) for the jobs taken before it to take theirs.
   * Returns the earlier jobs of the container still pending.
   */
  async function takePlace(jobId: string, containerId: string): Promise<string[]> {
    const start = Date.now();
    for (;;) {
      const force = Date.now() - start > placeWaitMs;
      const r = await cache.claimOrder(containerId, jobId, activeKey, force);
      if (!r.wait) {
        placed();
        return r.ids;
      }
      // The jobs it waits for are nearly always on their way to this process:
      // wake when one of them takes its place, or look again shortly.
      await nextPlacement(25);
    }
  }

  /**
   * Runs inside the container's serialized section, where every earlier job
   * of this process has finished its section and given up its place: an
   * earlier job still pending is back in the queue after a crash or waiting
   * out a retry's backoff, and this job steps aside until it has run.
   */
  async function mustWait(jobId: string, containerId: string): Promise<boolean> {
    const { ids } = await cache.claimOrder(containerId, jobId, activeKey, true);
    const stale: string[] = [];
    let wait = false;
    for (const id of ids) {
      const state = await jobState(id);
      if (state === 'completed' || state === 'failed' || state === 'unknown') stale.push(id);
      else wait = true;
    }
    await cache.releaseOrder(containerId, ...stale);
    return wait;
  }

  return async function process(job: Job, token?: string): Promise<AnyResult> {
    const jobId = job.id!;
    let parsed: ParsedJob;
    try {
      parsed = validator.parse(job.name, job.data);
    } catch (err) {
      const e = toJobError(err);
      log.warn({ jobId, job: job.name, containerId: safeContainerId(job.data), err: e.message }, 'job failed');
      // Marked as placed, so that jobs taken after it do not wait for it.
      await cache.claimOrder('', jobId, activeKey, true).then(placed, () => undefined);
      throw e;
    }
    if (parsed.name === 'cleanup-batch' || parsed.name === 'cleanup-all-except') {
      // Spans containers: each is ordered inside; the job itself takes no container's place.
      await cache.claimOrder('', jobId, activeKey, true);
      placed();
      try {
        return await batch(job, parsed);
      } catch (err) {
        const e = toJobError(err);
        log.warn({ jobId, job: job.name, err: e.message }, 'job failed');
        throw e;
      }
    }
    const { containerId } = parsed.data;
    trace.getActiveSpan()?.setAttributes({ 'cimq.container_id': containerId, 'cimq.volume_guid': volumeGuid(containerId) });
    const earlier = await takePlace(jobId, containerId);
    // Enter the section right after taking the place, so sections follow places.
    return serial.run<AnyResult>(containerId, async () => {
      try {
        if (earlier.some((id) => !finishedHere.has(id)) && (await mustWait(jobId, containerId))) {
          await job.moveToDelayed(Date.now() + orderRetryMs, token);
          log.debug({ jobId, containerId }, 'waiting for an earlier job of the container');
          throw new DelayedError();
        }
        // Each job's last cache write also gave up its place in the order.
        const res = await apply(job, parsed);
        finished(jobId);
        return res;
      } catch (err) {
        if (err instanceof DelayedError) throw err;
        const e = toJobError(err);
        // A job that will not run again gives up its place in the container's order.
        if (!willRetry(job, e)) {
          await cache.releaseOrder(containerId, jobId).then(() => finished(jobId), () => undefined);
        }
        log.warn({ jobId, job: job.name, containerId, err: e.message }, 'job failed');
        throw e;
      }
    });
  };
}

/** The container id for a log line, only when it is a short string. */
function safeContainerId(data: unknown): string | undefined {
  const id = (data as { containerId?: unknown } | null)?.containerId;
  return typeof id === 'string' && id.length <= 80 ? id : undefined;
}
