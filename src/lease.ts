// The node lease: one daemon serves a node at a time. A second daemon for the
// same node waits as a standby and takes over when the holder's lease lapses,
// or at once when the holder is a dead process on this same host.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { RedisClient } from './redis.js';
import type { Logger } from 'pino';
import { LuaScripts } from './scripts.js';

export interface LeaseHolder {
  token: string;
  host: string;
  pid: number;
  startedAt: number;
}

export interface LeaseOptions {
  key: string;
  node: string;
  /** How long the lease lives without renewal; renewed every third of it. */
  leaseMs: number;
  log: Logger;
  /** Called once if another daemon takes the lease from this one. */
  onLost: (holder: string) => void;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parse(value: string): LeaseHolder | null {
  try {
    return JSON.parse(value) as LeaseHolder;
  } catch {
    return null;
  }
}

export function describeHolder(value: string): string {
  const h = parse(value);
  return h ? `pid ${h.pid} on host ${h.host}, since ${new Date(h.startedAt).toISOString()}` : value;
}

export class NodeLease {
  readonly holder: LeaseHolder = { token: randomUUID(), host: os.hostname(), pid: process.pid, startedAt: Date.now() };
  private readonly value = JSON.stringify(this.holder);
  private readonly scripts: LuaScripts;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  held = false;

  constructor(private readonly redis: RedisClient, private readonly opts: LeaseOptions) {
    this.scripts = new LuaScripts(redis);
  }

  /** Waits until this daemon holds the node; resolves false if stopped first. */
  async acquire(pollMs = 250): Promise<boolean> {
    let announced = '';
    while (!this.stopped) {
      let r = await this.scripts.get('leaseAcquire')(this.opts.key, this.value, this.opts.leaseMs, '');
      if (r !== 1) {
        const cur = String(r);
        const h = parse(cur);
        // A holder that died on this host cannot renew: no need to wait out its lease.
        if (h && h.host === this.holder.host && h.pid !== process.pid && !pidAlive(h.pid)) {
          r = await this.scripts.get('leaseAcquire')(this.opts.key, this.value, this.opts.leaseMs, cur);
          if (r === 1) this.opts.log.warn({ node: this.opts.node, previous: describeHolder(cur) }, 'took over the node from a daemon that died');
        } else if (announced !== cur) {
          announced = cur;
          this.opts.log.warn({ node: this.opts.node, holder: describeHolder(cur) },
            `another cimq worker serves node ${this.opts.node} (${describeHolder(cur)}); waiting as a standby until it stops`);
        }
      }
      if (r === 1) {
        this.held = true;
        this.startRenewing();
        return true;
      }
      await new Promise((res) => setTimeout(res, pollMs));
    }
    return false;
  }

  private startRenewing(): void {
    const every = Math.max(50, Math.floor(this.opts.leaseMs / 3));
    this.timer = setInterval(() => {
      this.scripts.get('leaseRenew')(this.opts.key, this.value, this.opts.leaseMs).then((r) => {
        if (r === 1 || this.stopped) return;
        this.held = false;
        this.stop();
        this.opts.onLost(describeHolder(String(r)));
      }, (err: Error) => {
        // Redis unreachable: keep trying; readiness reports it meanwhile.
        this.opts.log.debug({ err: err.message }, 'lease renewal failed');
      });
    }, every);
    this.timer.unref();
  }

  private stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Stops renewing and gives the node up, so a standby takes over at once. */
  async release(): Promise<void> {
    const wasHeld = this.held;
    this.stop();
    this.held = false;
    if (wasHeld) await this.scripts.get('leaseRelease')(this.opts.key, this.value).catch(() => undefined);
  }
}
