// The Piscina pool that runs CimFS calls off the main thread. The main thread
// never loads the native library: only the task module in workers/ does.
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { NativeResult, NativeTask, NativeWorkerData } from '../workers/native-task.js';
import type { BackendKind } from '../native/backend.js';

export interface NativePoolOptions {
  backend: BackendKind;
  threads: number;
  /** Override where the library is loaded from (tests, unusual installs). */
  libraryPath?: string;
}

// dist/src/pool.js → dist/workers/native-task.js
const TASK_MODULE = fileURLToPath(new URL('../workers/native-task.js', import.meta.url));

export class NativePool {
  private readonly piscina: Piscina;
  readonly threads: number;
  readonly backend: BackendKind;

  constructor(opts: NativePoolOptions) {
    const workerData: NativeWorkerData = { backend: opts.backend, ...(opts.libraryPath ? { libraryPath: opts.libraryPath } : {}) };
    this.threads = opts.threads;
    this.backend = opts.backend;
    this.piscina = new Piscina({
      filename: TASK_MODULE,
      // A fixed-size pool: threads are cheap to keep, and waking an idle one
      // costs more than a native call. One task per thread, since each task
      // blocks its thread for the whole native call.
      minThreads: opts.threads,
      maxThreads: opts.threads,
      idleTimeout: Infinity,
      concurrentTasksPerWorker: 1,
      workerData,
    });
  }

  mount(cimPath: string, volumeGuid: string, flags: number): Promise<NativeResult> {
    return this.run({ op: 'mount', cimPath, volumeGuid, flags });
  }

  dismount(volumeGuid: string): Promise<NativeResult> {
    return this.run({ op: 'dismount', volumeGuid });
  }

  async isMounted(volumeGuid: string): Promise<boolean> {
    return (await this.run({ op: 'isMounted', volumeGuid })).mounted === true;
  }

  private inFlight = 0;

  private async run(task: NativeTask): Promise<NativeResult> {
    this.inFlight++;
    try {
      return (await this.piscina.run(task)) as NativeResult;
    } finally {
      this.inFlight--;
    }
  }

  /** Threads busy with a native call right now (at most the pool size). */
  get busy(): number {
    return Math.min(this.inFlight, this.threads);
  }

  get utilization(): number {
    return this.piscina.utilization;
  }

  /** Waits for running tasks; a native call that has started is never aborted. */
  async close(): Promise<void> {
    await this.piscina.close();
  }
}
