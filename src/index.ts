// cimq's public API: the client for orchestrators, the job contract, the
// error codes and hcsshim-compatible volume GUIDs; and the daemon, for
// embedding it in another process.
export { CimqClient, DEFAULT_JOB_OPTIONS, type ClientOptions, type BatchOptions, type RunOptions, type NodeStatus, type DaemonStatus } from './client.js';
export * from './contract.js';
export { CimqError, ERROR_CODES, type ErrorCode } from './errors.js';
export { volumeGuid, volumePath, CIM_MOUNT_NAMESPACE } from './guid.js';
export { cacheKeys, queueName, mountId, type CacheKeys } from './keys.js';
export { loadConfig, ConfigError, type Config, type ConfigOverrides } from './config.js';
export { startDaemon, type Daemon } from './daemon.js';
export { createValidator, type InputRules } from './validate.js';
export { startTracing, tracingConfigured, type Tracing } from './tracing.js';
