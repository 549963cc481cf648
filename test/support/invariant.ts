// The crash-safety invariant: what the emulator has mounted is exactly what
// the cache says is mounted, and nothing is left half-done.
import { expect } from 'vitest';
import type { CimqClient } from '../../dist/src/index.js';
import type { TestEnv } from './env.js';

export async function expectConsistent(env: TestEnv, client: CimqClient): Promise<void> {
  const entries = await client.list();
  expect(entries.filter((e) => e.state !== 'mounted'), 'entries stuck in an intermediate state').toEqual([]);
  const cached = entries.map((e) => `Volume{${e.volumeGuid}}`).sort();
  expect(env.mountedVolumes(), 'emulator volumes vs cached mounts').toEqual(cached);
}
