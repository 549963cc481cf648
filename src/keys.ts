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
  /** BullMQ's hash of one job: `<prefix>:{<node>}:<jobId>`. */
  job(jobId: string): string;
}

export function cacheKeys(prefix: string, node: string): CacheKeys {
  const base = nodeKeyBase(prefix, node);
  return {
    mount: (containerId, cimPath) => `${base}:mount:${mountId(containerId, cimPath)}`,
    container: (containerId) => `${base}:container:${containerId}`,
    index: `${base}:mounts`,
    job: (jobId) => `${base}:${jobId}`,
  };
}
