// Loads the Lua scripts in ./lua onto an ioredis connection as commands
// (EVALSHA, with ioredis falling back to EVAL after a script flush).
import { readFileSync } from 'node:fs';
import type { RedisClient } from './redis.js';

/**
 * Script name → number of KEYS it takes. File: ./lua/<kebab-case name>.lua;
 * a line `-- #include <file>` takes in ./lua/lib/<file> (shared functions).
 */
const SCRIPTS = {
  mountBegin: 7,
  mountCommit: 3,
  mountAbort: 3,
  unmountBegin: 5,
  unmountFinish: 5,
  unmountRevert: 1,
  recordResult: 2,
  orderClaim: 2,
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
  constructor(private readonly redis: RedisClient) {}

  get(name: ScriptName): ScriptFn {
    let fn = this.fns.get(name);
    if (!fn) {
      const command = `cimq_${name}`;
      const r = this.redis as unknown as Record<string, ScriptFn>;
      if (typeof r[command] !== 'function') {
        const file = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        const lua = readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8')
          .replace(/^-- #include (\S+)$/m, (_, lib: string) => readFileSync(new URL(`./lua/lib/${lib}`, import.meta.url), 'utf8'));
        this.redis.defineCommand(command, { numberOfKeys: SCRIPTS[name], lua });
      }
      fn = r[command]!.bind(this.redis);
      this.fns.set(name, fn);
    }
    return fn;
  }
}
