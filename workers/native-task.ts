// Piscina task module: the only code that runs blocking CimFS calls. It runs
// on pool threads, never on the daemon's main thread, and never touches Redis.
// Native failures come back as data (the HRESULT), not exceptions, so they
// cross the thread boundary intact; the processor turns them into job errors.
import { workerData } from 'piscina';
import { openBackend, type Backend, type BackendKind } from '../native/backend.js';

export interface NativeWorkerData {
  backend: BackendKind;
  libraryPath?: string;
}

export type NativeTask =
  | { op: 'mount'; cimPath: string; volumeGuid: string; flags: number }
  | { op: 'dismount'; volumeGuid: string }
  | { op: 'isMounted'; volumeGuid: string }
  | { op: 'listVolumes' };

export interface NativeResult {
  /** Unsigned HRESULT of the call; 0 for isMounted. */
  hresult: number;
  /** isMounted only. */
  mounted?: boolean;
  /** listVolumes only: GUIDs, or null where the backend cannot list. */
  volumes?: string[] | null;
  /** Time spent inside the native call, in milliseconds. */
  ms: number;
}

let backend: Backend | undefined;

/**
 * One call, or several in order: the pool sends a batch when calls queue up,
 * so that many short calls cost one hand-off between threads instead of one each.
 */
export default function runNativeTasks(tasks: NativeTask | NativeTask[]): NativeResult | NativeResult[] {
  return Array.isArray(tasks) ? tasks.map(runNativeTask) : runNativeTask(tasks);
}

function runNativeTask(task: NativeTask): NativeResult {
  const data = workerData as NativeWorkerData;
  backend ??= openBackend(data.backend, data.libraryPath);
  const start = performance.now();
  switch (task.op) {
    case 'mount': {
      const hresult = backend.mount(task.cimPath, task.volumeGuid, task.flags);
      return { hresult, ms: performance.now() - start };
    }
    case 'dismount': {
      const hresult = backend.dismount(task.volumeGuid);
      return { hresult, ms: performance.now() - start };
    }
    case 'isMounted': {
      const mounted = backend.isMounted(task.volumeGuid);
      return { hresult: 0, mounted, ms: performance.now() - start };
    }
    case 'listVolumes': {
      const volumes = backend.listVolumes();
      return { hresult: 0, volumes, ms: performance.now() - start };
    }
    default:
      throw new TypeError(`unknown native task ${JSON.stringify((task as { op?: unknown }).op)}`);
  }
}
