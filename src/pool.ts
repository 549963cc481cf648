// The Piscina pool that runs CimFS calls off the main thread. The main thread
// never loads the native library: only the task module in workers/ does.
import { fileURLToPath } from 'node:url';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { Piscina } from 'piscina';
import type { NativeResult, NativeTask, NativeWorkerData } from '../workers/native-task.js';
import type { BackendKind } from '../native/backend.js';

export interface NativePoolOptions {
  backend: BackendKind;
  /** Most threads, i.e. native calls that may block at once. */
  threads: number;
  /** Threads kept when idle (default: all); more start when calls queue. */
  minThreads?: number;
  /** An idle thread above minThreads stops after this long. */
  idleThreadMs?: number;
  /** A native call running longer than this is reported stuck (0: never). */
  callDeadlineMs?: number;
  /**
   * Most calls sent to one thread in one hand-off (default 64; 1 sends each
   * call alone). A batch runs its calls one after another on its thread, so
   * only calls that have been short lately are batched.
   */
  maxBatch?: number;
  /** Told of every native call that returned (metrics). */
  onCall?: (op: NativeTask['op'], ms: number, hresult: number) => void;
  /** Override where the library is loaded from (tests, unusual installs). */
  libraryPath?: string;
}

/**
 * A native call passed its deadline. It still runs on its thread (a thread
 * inside native code is never terminated); `late` settles when it returns.
 */
export class NativeDeadlineError extends Error {
  override name = 'NativeDeadlineError';
  constructor(readonly task: NativeTask, readonly deadlineMs: number, readonly late: Promise<NativeResult>) {
    super(`${task.op} did not return within ${deadlineMs} ms`);
  }
}

export interface StuckCall {
  op: NativeTask['op'];
  volumeGuid: string;
  since: number;
}

const tracer = trace.getTracer('cimq');

/** Native time one hand-off may queue on one thread when calls are short. */
const BATCH_BUDGET_MS = 2;

// dist/src/pool.js → dist/workers/native-task.js
const TASK_MODULE = fileURLToPath(new URL('../workers/native-task.js', import.meta.url));

export class NativePool {
  private readonly piscina: Piscina;
  readonly threads: number;
  readonly backend: BackendKind;
  private readonly deadlineMs: number;
  private readonly onCall: NativePoolOptions['onCall'];
  private readonly stuckCalls = new Set<StuckCall>();
  private readonly maxBatch: number;
  /** Calls waiting for a thread, sent at the end of the event-loop turn. */
  private queued: { task: NativeTask; resolve: (r: NativeResult) => void; reject: (e: Error) => void }[] = [];
  private flushScheduled = false;
  /** Hand-offs (single calls or batches) running on threads. */
  private handOffsRunning = 0;
  /** Hand-offs sent since start: at most `calls`, fewer when calls were batched. */
  handOffs = 0;
  private drained: (() => void) | null = null;
  /**
   * Recent mean time inside a native call per operation, in ms. It starts
   * pessimistic, so calls go one per thread until they have shown they are short.
   */
  private readonly meanCallMs: Record<NativeTask['op'], number> = { mount: 10, dismount: 10, isMounted: 10, listVolumes: 10 };
  /** Native calls completed (or failed) since start. */
  calls = 0;

  constructor(opts: NativePoolOptions) {
    this.deadlineMs = opts.callDeadlineMs ?? 0;
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.onCall = opts.onCall;
    const workerData: NativeWorkerData = { backend: opts.backend, ...(opts.libraryPath ? { libraryPath: opts.libraryPath } : {}) };
    this.threads = opts.threads;
    this.backend = opts.backend;
    this.piscina = new Piscina({
      filename: TASK_MODULE,
      // By default every thread stays ready: starting one (a V8 isolate and
      // the library) costs tens of ms and stalls the main loop briefly, which a
      // burst of container starts would feel. Each costs ~11 MB; with
      // minThreads below threads the rest start on demand and stop after
      // idleThreadMs (safe: an idle thread is not inside native code).
      // One task per thread, since each task blocks its thread for the call.
      minThreads: Math.min(opts.minThreads ?? opts.threads, opts.threads),
      maxThreads: opts.threads,
      idleTimeout: opts.idleThreadMs ?? 60_000,
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

  /** GUIDs of the CimFS volumes mounted now, or null where the backend cannot list them. */
  async listVolumes(): Promise<string[] | null> {
    return (await this.run({ op: 'listVolumes' })).volumes ?? null;
  }

  private inFlight = 0;

  private run(task: NativeTask): Promise<NativeResult> {
    this.inFlight++;
    // A span per native call, child of the job's span when tracing is on (a no-op otherwise).
    const span = tracer.startSpan(`cimfs.${task.op}`, { attributes: 'volumeGuid' in task ? { 'cimq.volume_guid': task.volumeGuid } : {} });
    const call = this.submit(task).then((r) => {
      this.meanCallMs[task.op] += (r.ms - this.meanCallMs[task.op]) * 0.2;
      this.onCall?.(task.op, r.ms, r.hresult);
      span.setAttribute('cimq.hresult', `0x${r.hresult.toString(16)}`);
      if (r.hresult !== 0 && task.op !== 'isMounted' && task.op !== 'listVolumes') span.setStatus({ code: SpanStatusCode.ERROR });
      return r;
    }).finally(() => {
      this.inFlight--;
      this.calls++;
      span.end();
    });
    if (!this.deadlineMs) return call;
    return new Promise<NativeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        const stuck: StuckCall = { op: task.op, volumeGuid: 'volumeGuid' in task ? task.volumeGuid : '', since: Date.now() - this.deadlineMs };
        this.stuckCalls.add(stuck);
        const late = call.finally(() => this.stuckCalls.delete(stuck));
        late.catch(() => undefined);
        reject(new NativeDeadlineError(task, this.deadlineMs, late));
      }, this.deadlineMs);
      call.then((r) => {
        clearTimeout(timer);
        resolve(r);
      }, (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      });
    });
  }

  private submit(task: NativeTask): Promise<NativeResult> {
    return new Promise<NativeResult>((resolve, reject) => {
      this.queued.push({ task, resolve, reject });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      // Calls made in the same turn (replies for many jobs arrive in one
      // socket read, and their jobs reach this point together) leave together.
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    });
  }

  /**
   * Sends queued calls to idle threads, at most one hand-off per thread.
   * Waking a thread costs more than a short call, so a hand-off takes queued
   * calls while their recent mean times add up to at most BATCH_BUDGET_MS; a
   * call that has been slow lately goes alone, so blocking calls run side by
   * side. (A short call that hangs holds up those batched behind it.)
   */
  private flush(): void {
    while (this.queued.length > 0 && this.handOffsRunning < this.threads) {
      let size = 1;
      let cost = this.meanCallMs[this.queued[0]!.task.op];
      while (size < this.queued.length && size < this.maxBatch) {
        cost += this.meanCallMs[this.queued[size]!.task.op];
        if (cost > BATCH_BUDGET_MS) break;
        size++;
      }
      const calls = this.queued.splice(0, size);
      this.handOffsRunning++;
      this.handOffs++;
      const sent = size === 1 ? calls[0]!.task : calls.map((c) => c.task);
      (this.piscina.run(sent) as Promise<NativeResult | NativeResult[]>).then((r) => {
        const results = Array.isArray(r) ? r : [r];
        calls.forEach((c, i) => c.resolve(results[i]!));
      }, (err: unknown) => {
        for (const c of calls) c.reject(err as Error);
      }).finally(() => {
        this.handOffsRunning--;
        this.flush();
        if (this.handOffsRunning === 0 && this.queued.length === 0) this.drained?.();
      });
    }
  }

  /** Native calls past their deadline that have not returned yet. */
  get stuck(): StuckCall[] {
    return [...this.stuckCalls];
  }

  /** Threads busy with a native call right now (at most the pool size). */
  get busy(): number {
    return Math.min(this.inFlight, this.threads);
  }

  get utilization(): number {
    return this.piscina.utilization;
  }

  /**
   * Waits for running calls, then stops the threads. A native call that has
   * started is never aborted: with stuck calls the threads are left to the
   * process's exit instead of being terminated mid-call.
   */
  async close(): Promise<void> {
    if (this.stuckCalls.size > 0) return;
    if (this.handOffsRunning > 0 || this.queued.length > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
    await this.piscina.close();
  }
}
