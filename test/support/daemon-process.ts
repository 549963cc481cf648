// `cimq worker` as a child process, the way users run it.
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, type TestEnv } from './env.js';

export interface DaemonProcess {
  proc: ChildProcess;
  /** Resolves when the worker logged that it is ready. */
  ready: Promise<void>;
  /** Resolves with how the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  output(): string;
  /** SIGTERM and wait; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export function spawnDaemon(env: TestEnv, extraEnv: Record<string, string> = {}, args: string[] = []): DaemonProcess {
  const proc = spawn(process.execPath, [CLI, 'worker', '--allowed-roots', env.layers, ...args], {
    env: env.childEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  // 'exit' time is when it died; resolve on 'close', once its output has all been read.
  let diedAt = 0;
  proc.once('exit', () => (diedAt = performance.now()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.once('close', (code, signal) => resolve({ code, signal, at: diedAt || performance.now() })));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('cimq worker ready')) {
        clearInterval(timer);
        resolve();
      } else if (proc.exitCode !== null || proc.signalCode !== null) {
        clearInterval(timer);
        reject(new Error(`daemon exited before it was ready:\n${out}`));
      }
    }, 20);
  });
  ready.catch(() => undefined);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    ready,
    exited,
    output: () => out,
    async stop(graceMs = 10_000) {
      if (!alive()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill() {
      if (alive()) proc.kill('SIGKILL');
      await exited;
    },
  };
}
