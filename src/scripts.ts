// Loads the Lua scripts in ./lua onto an ioredis connection as commands
// (EVALSHA, with ioredis falling back to EVAL after a script flush).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Script name → number of KEYS it takes. File: ./lua/<kebab-case name>.lua */
const SCRIPTS = {
  mountBegin: 5,
  mountCommit: 3,
  mountAbort: 3,
  unmountBegin: 3,
  unmountFinish: 5,
  unmountRevert: 1,
  recordResult: 2,
  orderClaim: 4,
  orderRelease: 1,
  reconcileEntry: 4,
  leaseAcquire: 1,
  leaseRenew: 1,
  leaseRelease: 1,
} as const;
export type ScriptName = keyof typeof SCRIPTS;
export type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

export class LuaScripts {
  private readonly fns = new Map<ScriptName, ScriptFn>();
  constructor(private readonly redis: Redis) {}

  get(name: ScriptName): ScriptFn {
    let fn = this.fns.get(name);
    if (!fn) {
      const command = `cimq_${name}`;
      const r = this.redis as unknown as Record<string, ScriptFn>;
      if (typeof r[command] !== 'function') {
        const file = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        const lua = readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8');
        this.redis.defineCommand(command, { numberOfKeys: SCRIPTS[name], lua });
      }
      fn = r[command]!.bind(this.redis);
      this.fns.set(name, fn);
    }
    return fn;
  }
}
