// The Redis key layout, part of the public contract. Every key of one node
// carries the node name in a `{...}` hash tag, so a node's queue and cache
// live in one Redis Cluster slot and every Lua script stays atomic.

/** BullMQ queue name of a node: `{<node>}`, braces included. */
export function queueName(node: string): string {
  return `{${node}}`;
}

/** The cache's half of the key space: `<prefix>:{<node>}`. */
export function nodeKeyBase(prefix: string, node: string): string {
  return `${prefix}:${queueName(node)}`;
}

/** The seed's map key, `containerID_cimPath`. */
export function mountId(containerId: string, cimPath: string): string {
  return `${containerId}_${cimPath}`;
}

export interface CacheKeys {
  /** Hash of one mount: `<prefix>:{<node>}:mount:<containerId>_<cimPath>`. */
  mount(containerId: string, cimPath: string): string;
  /** Set of one container's mount keys: `<prefix>:{<node>}:container:<containerId>`. */
  container(containerId: string): string;
  /** Set of every mount key of the node: `<prefix>:{<node>}:mounts`. */
  readonly index: string;
  /** Sorted set of a container's jobs not yet finished, in the order first taken. */
  pending(containerId: string): string;
  /** Counter that orders first sightings of jobs: `<prefix>:{<node>}:seq`. */
  readonly seq: string;
  /** The node lease, held by the one daemon serving the node. */
  readonly lease: string;
  /** The serving daemon's status (JSON, refreshed every few seconds), for `cimq status`. */
  readonly status: string;
  /** BullMQ's hash of one job: `<prefix>:{<node>}:<jobId>`. */
  job(jobId: string): string;
  /** BullMQ's list of the node's active jobs, newest on the left: `<prefix>:{<node>}:active`. */
  readonly active: string;
}

export function cacheKeys(prefix: string, node: string): CacheKeys {
  const base = nodeKeyBase(prefix, node);
  return {
    mount: (containerId, cimPath) => `${base}:mount:${mountId(containerId, cimPath)}`,
    container: (containerId) => `${base}:container:${containerId}`,
    index: `${base}:mounts`,
    pending: (containerId) => `${base}:pending:${containerId}`,
    seq: `${base}:seq`,
    lease: `${base}:daemon`,
    status: `${base}:status`,
    job: (jobId) => `${base}:${jobId}`,
    active: `${base}:active`,
  };
}
