// The job contract: what producers put on a node's queue and what they get
// back. Public: any BullMQ producer in any language may follow it.

export const JOB_NAMES = ['mount', 'unmount', 'cleanup', 'cleanup-batch', 'cleanup-all-except'] as const;
export type JobName = (typeof JOB_NAMES)[number];

/** CIM_MOUNT_IMAGE_FLAGS, as hcsshim names them. */
export const MOUNT_FLAGS = {
  None: 0x0,
  ChildOnly: 0x1,
  EnableDax: 0x2,
  CacheFiles: 0x4,
  CacheRegions: 0x8,
  BlockDeviceCim: 0x10,
  SingleFileCim: 0x20,
  VerifiedCim: 0x80,
} as const;
export const KNOWN_MOUNT_FLAGS: number = Object.values(MOUNT_FLAGS).reduce<number>((a, b) => a | b, 0);
/** The seed mounts with CacheFiles. */
export const DEFAULT_MOUNT_FLAGS = MOUNT_FLAGS.CacheFiles;

export interface MountRequest {
  containerId: string;
  cimPath: string;
  /** CIM_MOUNT_IMAGE_FLAGS; default CacheFiles (0x4). */
  flags?: number;
}
export interface UnmountRequest {
  containerId: string;
  cimPath: string;
}
export interface CleanupRequest {
  containerId: string;
}

/** Clean many containers in one job. */
export interface BatchCleanupRequest {
  containerIds: string[];
  /** Report what would be unmounted, and change nothing. */
  dryRun?: boolean;
}
/** Clean every container of the node except the live ones (after a crash). */
export interface CleanupAllExceptRequest {
  liveContainerIds: string[];
  dryRun?: boolean;
}
/** At most this many ids in one batch job. */
export const MAX_BATCH = 100_000;

export interface MountResult {
  volumePath: string;
  volumeGuid: string;
  containerId: string;
  cimPath: string;
  flags: number;
  /** True when (containerId, cimPath) was mounted before this job. */
  alreadyMounted: boolean;
}
export interface UnmountResult {
  volumePath: string;
  volumeGuid: string;
  containerId: string;
  cimPath: string;
}
export interface CleanupResult {
  containerId: string;
  /** Volume paths dismounted by this job (empty when there was nothing). */
  unmounted: string[];
}

/** BullMQ job progress of a batch cleanup. */
export interface BatchProgress {
  done: number;
  total: number;
  failed: number;
}

export interface BatchCleanupResult {
  dryRun: boolean;
  /** Containers (and unknown volumes) looked at. */
  total: number;
  /** Volumes dismounted (or, with dryRun, that would be); containerId null for a volume no known container owns. */
  unmounted: { containerId: string | null; volumeGuid: string; volumePath: string }[];
  /** What failed; one failure never stops the rest. */
  failures: { containerId: string | null; volumeGuid: string; code: string; message: string; hresult?: number }[];
}

export interface JobPayloads {
  mount: MountRequest;
  unmount: UnmountRequest;
  cleanup: CleanupRequest;
  'cleanup-batch': BatchCleanupRequest;
  'cleanup-all-except': CleanupAllExceptRequest;
}
export interface JobResults {
  mount: MountResult;
  unmount: UnmountResult;
  cleanup: CleanupResult;
  'cleanup-batch': BatchCleanupResult;
  'cleanup-all-except': BatchCleanupResult;
}

export type ParsedJob =
  | { name: 'mount'; data: Required<MountRequest> }
  | { name: 'unmount'; data: UnmountRequest }
  | { name: 'cleanup'; data: CleanupRequest }
  | { name: 'cleanup-batch'; data: BatchCleanupRequest }
  | { name: 'cleanup-all-except'; data: CleanupAllExceptRequest };

export type MountState = 'mounting' | 'mounted' | 'unmounting';

/** One cache entry, as `cimq ls` shows it. */
export interface MountEntry {
  key: string;
  containerId: string;
  cimPath: string;
  volumeGuid: string;
  volumePath: string;
  flags: number;
  state: MountState;
  /** ms since the epoch; set when the mount completed. */
  mountedAt?: number;
  /** ms since the epoch of the last state change. */
  updatedAt: number;
  /** The job that last wrote this entry's intent. */
  jobId?: string;
}
