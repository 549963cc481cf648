// The job processor: validates a job, orders it behind earlier jobs of the
// same container, writes the intent to the cache, runs the native call on
// the pool, and writes the outcome. It is the only writer of the cache.
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { HRESULT } from '../native/hresult.js';
import type { MountCache } from './cache.js';
import type {
  CleanupRequest, CleanupResult, JobName, MountRequest, MountResult, UnmountRequest, UnmountResult,
} from './contract.js';
import { CimqError, describeHresult, isTransientHresult } from './errors.js';
import { volumeGuid, volumePath } from './guid.js';
import type { NativePool } from './pool.js';
import { KeyedSerializer } from './serial.js';
import type { Validator } from './validate.js';

export interface ProcessorDeps {
  cache: MountCache;
  pool: NativePool;
  validator: Validator;
  log: Logger;
}

type AnyResult = MountResult | UnmountResult | CleanupResult;

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

export function createProcessor({ cache, pool, validator, log }: ProcessorDeps) {
  const serial = new KeyedSerializer();

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
      case 'mounted':
        return result(true, begin.flags);
      case 'conflict':
        throw new CimqError('VOLUME_IN_USE',
          `cim Mount ${cimPath} ${guid}: container ${containerId} already has ${begin.otherCimPath} mounted on this volume; unmount it first`);
    }
    const native = await pool.mount(cimPath, guid, flags);
    const ok = native.hresult === HRESULT.S_OK || (native.hresult === HRESULT.ALREADY_EXISTS && begin.kind === 'resumed');
    if (!ok) {
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
  async function dismount(subject: string, guid: string): Promise<void> {
    const native = await pool.dismount(guid);
    if (native.hresult !== HRESULT.S_OK && native.hresult !== HRESULT.FILE_NOT_FOUND) {
      throw nativeError('Unmount', subject, guid, native.hresult);
    }
  }

  async function unmountKey(key: string, containerId: string, subject: string, jobId: string,
    result?: (guid: string, vol: string) => UnmountResult): Promise<{ done?: string; volumePath?: string } | null> {
    const begin = await cache.beginUnmountKey(key, jobId);
    if (begin.kind === 'done') return { done: begin.result };
    if (begin.kind === 'missing') return null;
    try {
      await dismount(subject, begin.volumeGuid);
    } catch (err) {
      await cache.revertUnmountKey(key);
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

  async function cleanup(job: Job, req: CleanupRequest): Promise<CleanupResult> {
    const { containerId } = req;
    const jobId = job.id!;
    const recorded = await cache.jobResult(jobId);
    if (recorded) return JSON.parse(recorded) as CleanupResult;
    const unmounted = new Set<string>();
    const keyPrefix = cache.keys.mount(containerId, '');
    for (const key of await cache.containerMountKeys(containerId)) {
      const r = await unmountKey(key, containerId, key.slice(keyPrefix.length), jobId);
      if (r?.volumePath) unmounted.add(r.volumePath);
    }
    // The seed's fallback: the container's deterministic volume, mounted by a
    // process whose cache is gone (hcsshim, or cimq before a lost Redis).
    const guid = volumeGuid(containerId);
    const vol = volumePath(guid);
    if (!unmounted.has(vol) && (await pool.isMounted(guid))) {
      await dismount(containerId, guid);
      unmounted.add(vol);
    }
    const res: CleanupResult = { containerId, unmounted: [...unmounted] };
    await cache.recordResult(jobId, res);
    log.info({ jobId, containerId, volumeGuid: guid, unmounted: res.unmounted.length }, 'cleaned up');
    return res;
  }

  return async function process(job: Job): Promise<AnyResult> {
    try {
      const parsed = validator.parse(job.name, job.data);
      return await serial.run<AnyResult>(parsed.data.containerId, () => {
        switch (parsed.name as JobName) {
          case 'mount': return mount(job, parsed.data as Required<MountRequest>);
          case 'unmount': return unmount(job, parsed.data as UnmountRequest);
          default: return cleanup(job, parsed.data as CleanupRequest);
        }
      });
    } catch (err) {
      const e = toJobError(err);
      log.warn({ jobId: job.id, job: job.name, containerId: safeContainerId(job.data), err: e.message }, 'job failed');
      throw e;
    }
  };
}

/** The container id for a log line, only when it is a short string. */
function safeContainerId(data: unknown): string | undefined {
  const id = (data as { containerId?: unknown } | null)?.containerId;
  return typeof id === 'string' && id.length <= 80 ? id : undefined;
}
