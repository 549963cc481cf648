// Prometheus metrics of one daemon, on its own registry. Counters and
// histograms move as jobs and native calls finish; gauges about Redis state
// (queue depth, cache entries) are read when Prometheus scrapes.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { JOB_NAMES } from './contract.js';

export interface ScrapeSources {
  queueCounts(): Promise<Record<string, number>>;
  cacheStates(): Promise<Record<string, number>>;
  pool(): { threads: number; busy: number; stuck: number; utilization: number; calls: number; handOffs: number };
  ready(): boolean;
}

const JOB_LABELS = new Set<string>(JOB_NAMES);

export class Metrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'job' | 'outcome'>;
  private readonly jobSeconds: Histogram<'job'>;
  private readonly nativeSeconds: Histogram<'op' | 'result'>;

  constructor(sources: ScrapeSources) {
    const registers = [this.registry];
    // Process and runtime metrics, event-loop delay among them (nodejs_eventloop_lag_*).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    this.jobs = new Counter({
      name: 'cimq_jobs_total', help: 'Jobs finished, by job name and outcome (completed, or the error code)',
      labelNames: ['job', 'outcome'], registers,
    });
    this.jobSeconds = new Histogram({
      name: 'cimq_job_duration_seconds', help: 'Time from a job being taken to its result, by job name',
      labelNames: ['job'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers,
    });
    this.nativeSeconds = new Histogram({
      name: 'cimq_native_call_duration_seconds', help: 'Time inside CimFS calls on pool threads, by call and result (ok or error)',
      labelNames: ['op', 'result'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5], registers,
    });
    // Plain gauges, read when scraped.
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers, collect() { this.set(read()); } });
    gauge('cimq_pool_threads', 'Pool threads (CIMQ_THREADS)', () => sources.pool().threads);
    gauge('cimq_pool_busy_threads', 'Pool threads inside a native call now', () => sources.pool().busy);
    gauge('cimq_pool_utilization', 'Share of pool thread time spent running calls since start (0..1)', () => sources.pool().utilization);
    gauge('cimq_native_stuck_calls', 'Native calls past their deadline that have not returned', () => sources.pool().stuck);
    // Counters kept by the pool, exposed as counters (monotonic since start).
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
    counter('cimq_native_calls_total', 'Native calls made since start', () => sources.pool().calls);
    counter('cimq_native_handoffs_total', 'Hand-offs of native calls to pool threads since start (short calls go several per hand-off)',
      () => sources.pool().handOffs);
    gauge('cimq_ready', '1 when /readyz would answer 200', () => (sources.ready() ? 1 : 0));
    new Gauge({
      name: 'cimq_queue_jobs', help: "Jobs in the node's queue, by state", labelNames: ['state'], registers,
      async collect() {
        const counts = await sources.queueCounts().catch(() => ({}));
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'cimq_cache_entries', help: 'Mount cache entries of the node, by state', labelNames: ['state'], registers,
      async collect() {
        const states = await sources.cacheStates().catch(() => ({}));
        for (const state of ['mounting', 'mounted', 'unmounting']) this.set({ state }, (states as Record<string, number>)[state] ?? 0);
      },
    });
  }

  jobFinished(job: string, outcome: string, seconds: number): void {
    const name = JOB_LABELS.has(job) ? job : 'unknown';
    this.jobs.inc({ job: name, outcome });
    this.jobSeconds.observe({ job: name }, seconds);
  }

  nativeCall(op: string, ok: boolean, ms: number): void {
    this.nativeSeconds.observe({ op, result: ok ? 'ok' : 'error' }, ms / 1000);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The error code a failedReason leads with, as a bounded label. */
export function outcomeOf(failedReason: string | undefined): string {
  const m = /^([A-Z_]+): /.exec(failedReason ?? '');
  return m ? m[1]! : 'INTERNAL';
}
