// Baseline for "blocking hidden": the same CimFS calls made synchronously on
// the main thread (what cimq never does), letting the event loop turn between
// calls. Prints JSON: wall ms and the main thread's event-loop delay.
import { mkdirSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import { v4 as uuidv4 } from 'uuid';
import { loadCimfs, guidStruct } from '../dist/native/cimfs.js';
import { defaultLibraryPath } from '../dist/native/backend.js';

const [n, dir] = [Number(process.argv[2]), process.argv[3]];
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}/sync.cim`, 'x');
const lib = loadCimfs(defaultLibraryPath('emulator'));
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const start = performance.now();
for (let i = 0; i < n; i++) {
  lib.CimMountImage(dir, 'sync.cim', 4, guidStruct(uuidv4()));
  await tick();
}
const wall = performance.now() - start;
h.disable();
console.log(JSON.stringify({ wall, p99: h.percentile(99) / 1e6, max: h.max / 1e6 }));
