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
  /** How long a job waits before looking again for an earlier job of its container. */
  orderRetryMs?: number;
  /** Longest wait for an earlier job of the container, taken off the queue here, to reach the processor. */
  arrivalWaitMs?: number;
}

type AnyResult = MountResult | UnmountResult | CleanupResult | BatchCleanupResult;

/** Returned instead of a result: earlier jobs of the container are pending; nothing was done. */
class EarlierPending {
  constructor(readonly ids: string[]) {}
}

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

export function createProcessor({ cache, pool, validator, log, jobState, orderRetryMs = 200, arrivalWaitMs = 1000 }: ProcessorDeps) {
  const serial = new KeyedSerializer();
  /**
   * Jobs that finished here and gave up their place: a later job of the same
   * container need not ask Redis about them again. Bounded; forgetting one
   * only costs a look-up.
   */
  const finishedHere = new Set<string>();
  /** Jobs this process has been handed and not settled yet: settles when the job's attempt ends here. */
  const inProcess = new Map<string, Promise<void>>();
  /** Jobs waited for by a later job of their container, before they reach the processor. */
  const arrivals = new Map<string, (() => void)[]>();
  const arrival = (jobId: string, ms: number) => new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      // A job that never arrives (a dead daemon's) leaves no waiter behind.
      const left = (arrivals.get(jobId) ?? []).filter((f) => f !== done);
      if (left.length > 0) arrivals.set(jobId, left);
      else arrivals.delete(jobId);
      resolve();
    }
    arrivals.set(jobId, [...(arrivals.get(jobId) ?? []), done]);
  });
  const finished = (jobId: string) => {
    finishedHere.add(jobId);
    if (finishedHere.size > 10_000) finishedHere.delete(finishedHere.values().next().value!);
  };

  async function mount(job: Job, req: Required<MountRequest>): Promise<MountResult | EarlierPending> {
    const { containerId, cimPath, flags } = req;
    const guid = volumeGuid(containerId);
    const vol = volumePath(guid);
    const jobId = job.id!;
    const begin = await cache.beginMount({ containerId, cimPath, volumeGuid: guid, volumePath: vol, flags }, jobId);
    const result = (already: boolean, f: number): MountResult => ({
      volumePath: vol, volumeGuid: guid, containerId, cimPath, flags: f, alreadyMounted: already,
    });
    switch (begin.kind) {
      case 'earlier':
        return new EarlierPending(begin.ids);
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
    result?: (guid: string, vol: string) => UnmountResult): Promise<{ done?: string; volumePath?: string } | EarlierPending | null> {
    const begin = await cache.beginUnmountKey(key, jobId, result ? containerId : undefined);
    if (begin.kind === 'earlier') return new EarlierPending(begin.ids);
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

  async function unmount(job: Job, req: UnmountRequest): Promise<UnmountResult | EarlierPending> {
    const { containerId, cimPath } = req;
    const key = cache.keys.mount(containerId, cimPath);
    const make = (guid: string, vol: string): UnmountResult => ({ volumePath: vol, volumeGuid: guid, containerId, cimPath });
    const r = await unmountKey(key, containerId, cimPath, job.id!, make);
    if (r instanceof EarlierPending) return r;
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
      if (r && !(r instanceof EarlierPending) && r.volumePath) unmounted.add(r.volumePath);
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

  async function cleanup(job: Job, req: CleanupRequest): Promise<CleanupResult | EarlierPending> {
    const { containerId } = req;
    const jobId = job.id!;
    const { earlier } = await cache.claimOrder(jobId, containerId);
    if (earlier.length) return new EarlierPending(earlier);
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

  function apply(job: Job, parsed: ParsedJob): Promise<AnyResult | EarlierPending> {
    switch (parsed.name) {
      case 'mount': return mount(job, parsed.data);
      case 'unmount': return unmount(job, parsed.data);
      case 'cleanup': return cleanup(job, parsed.data);
      default: return batch(job, parsed);
    }
  }

  /**
   * Waits for the earlier pending jobs of the container that run here: each
   * was taken off the queue by this worker, so one not handed to the
   * processor yet is on its way. Returns the earlier jobs that did not
   * finish here: back in the queue after a crash or waiting out a retry's
   * backoff (or, rarely, still on their way).
   */
  async function awaitEarlier(earlier: string[]): Promise<string[]> {
    for (const id of earlier) {
      if (finishedHere.has(id)) continue;
      if (!inProcess.has(id)) await arrival(id, arrivalWaitMs);
      await inProcess.get(id);
    }
    return earlier.filter((id) => !finishedHere.has(id));
  }

  /**
   * Whether an earlier job of the container is still to run elsewhere
   * (waiting, delayed, or active in a dead daemon's hands), so this job must
   * step aside until it has. Finished ones give up their places.
   */
  async function mustWait(containerId: string, earlier: string[]): Promise<boolean> {
    const stale: string[] = [];
    let wait = false;
    for (const id of earlier) {
      const state = await jobState(id);
      if (state === 'completed' || state === 'failed' || state === 'unknown') stale.push(id);
      else wait = true;
    }
    await cache.releaseOrder(containerId, ...stale);
    return wait;
  }

  async function run(job: Job, token: string | undefined): Promise<AnyResult> {
    const jobId = job.id!;
    let parsed: ParsedJob;
    try {
      parsed = validator.parse(job.name, job.data);
    } catch (err) {
      const e = toJobError(err);
      log.warn({ jobId, job: job.name, containerId: safeContainerId(job.data), err: e.message }, 'job failed');
      // Placed like any job (lib/order.lua keeps the placed jobs contiguous), then out of any order at once.
      await cache.claimOrder(jobId)
        .then(({ containerId }) => cache.releaseOrder(containerId, jobId))
        .then(() => finished(jobId), () => undefined);
      throw e;
    }
    if (parsed.name === 'cleanup-batch' || parsed.name === 'cleanup-all-except') {
      // Spans containers: each is ordered inside; the job itself is in no container's order.
      try {
        await cache.claimOrder(jobId);
        return await batch(job, parsed);
      } catch (err) {
        const e = toJobError(err);
        log.warn({ jobId, job: job.name, err: e.message }, 'job failed');
        throw e;
      }
    }
    const { containerId } = parsed.data;
    trace.getActiveSpan()?.setAttributes({ 'cimq.container_id': containerId, 'cimq.volume_guid': volumeGuid(containerId) });
    try {
      // The section keeps batch cleanups off a container while its job runs.
      // The job's first cache write places it in the container's order; its
      // last gives the place up. With earlier jobs pending it does nothing,
      // waits for those that run here, and begins again.
      for (let round = 0; ; round++) {
        const out = await serial.run(containerId, () => apply(job, parsed));
        if (!(out instanceof EarlierPending)) {
          finished(jobId);
          return out;
        }
        const elsewhere = await awaitEarlier(out.ids);
        if (elsewhere.length && (round >= 2 || (await mustWait(containerId, elsewhere)))) {
          await job.moveToDelayed(Date.now() + orderRetryMs, token);
          log.debug({ jobId, containerId }, 'waiting for an earlier job of the container');
          throw new DelayedError();
        }
      }
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
  }

  return async function process(job: Job, token?: string): Promise<AnyResult> {
    const jobId = job.id!;
    let settle!: () => void;
    inProcess.set(jobId, new Promise<void>((resolve) => { settle = resolve; }));
    for (const wake of arrivals.get(jobId) ?? []) wake();
    arrivals.delete(jobId);
    try {
      return await run(job, token);
    } finally {
      inProcess.delete(jobId);
      settle();
    }
  };
}

/** The container id for a log line, only when it is a short string. */
function safeContainerId(data: unknown): string | undefined {
  const id = (data as { containerId?: unknown } | null)?.containerId;
  return typeof id === 'string' && id.length <= 80 ? id : undefined;
}
