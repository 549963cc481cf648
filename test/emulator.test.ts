// The CimFS emulator through the real path: a Piscina pool thread loads it
// with koffi and calls CimMountImage / CimDismountImage.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NativePool } from '../dist/src/pool.js';
import { volumeGuid } from '../dist/src/index.js';
import { createTestEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let pool: NativePool;

beforeAll(async () => {
  env = await createTestEnv('emulator');
  pool = new NativePool({ backend: 'emulator', threads: 2 });
});
afterAll(async () => {
  await pool.close();
  await env.dispose();
});

const hex = (n: number) => `0x${n.toString(16)}`;

describe('CimFS emulator', () => {
  it('mounts into one Volume{guid} directory recording what it received, and dismounts', async () => {
    const cim = env.cim('日本/layer one.cim');
    const guid = volumeGuid('emu-1');
    expect(hex((await pool.mount(cim, guid, 0x4)).hresult)).toBe('0x0');
    expect(env.mountedVolumes()).toEqual([`Volume{${guid}}`]);
    const record = readFileSync(path.join(env.emulatorRoot, `Volume{${guid}}`, 'mount.txt'), 'utf8');
    expect(record).toContain(`image=${cim}\n`);
    expect(record).toContain(`dir=${path.dirname(cim)}\n`);
    expect(record).toContain('name=layer one.cim\n');
    expect(record).toContain('flags=0x4\n');
    expect(await pool.isMounted(guid)).toBe(true);

    expect(hex((await pool.dismount(guid)).hresult)).toBe('0x0');
    expect(env.mountedVolumes()).toEqual([]);
    expect(await pool.isMounted(guid)).toBe(false);
    // Nothing half-made is left behind.
    expect(readdirSync(env.emulatorRoot)).toEqual([]);
  });

  it('answers with the HRESULTs cimfs.dll uses', async () => {
    const guid = volumeGuid('emu-2');
    expect(hex((await pool.mount(path.join(env.layers, 'missing.cim'), guid, 4)).hresult)).toBe('0x80070002');
    expect(hex((await pool.mount('/no/such/dir/a.cim', guid, 4)).hresult)).toBe('0x80070003');
    expect(hex((await pool.mount(env.cim('a.cim'), guid, 0x40)).hresult)).toBe('0x80070057');
    expect(hex((await pool.dismount(guid)).hresult)).toBe('0x80070002');
    expect(hex((await pool.mount(env.cim('a.cim'), guid, 4)).hresult)).toBe('0x0');
    expect(hex((await pool.mount(env.cim('b.cim'), guid, 4)).hresult)).toBe('0x800700b7');
    expect(hex((await pool.dismount(guid)).hresult)).toBe('0x0');
  });

  it('lets exactly one of many racing mounts of one GUID win', async () => {
    const guid = volumeGuid('emu-race');
    const cim = env.cim('race.cim');
    const results = await Promise.all(Array.from({ length: 8 }, () => pool.mount(cim, guid, 4)));
    const codes = results.map((r) => hex(r.hresult)).sort();
    expect(codes.filter((c) => c === '0x0')).toHaveLength(1);
    expect(codes.filter((c) => c === '0x800700b7')).toHaveLength(7);
    expect(hex((await pool.dismount(guid)).hresult)).toBe('0x0');
    expect(existsSync(env.emulatorRoot) && readdirSync(env.emulatorRoot)).toEqual([]);
  });

  it('blocks for CIMFS_EMULATOR_LATENCY_MS inside the native call', async () => {
    process.env.CIMFS_EMULATOR_LATENCY_MS = '120';
    try {
      const r = await pool.dismount(volumeGuid('emu-none'));
      expect(hex(r.hresult)).toBe('0x80070002');
      expect(r.ms).toBeGreaterThanOrEqual(110);
    } finally {
      delete process.env.CIMFS_EMULATOR_LATENCY_MS;
    }
  });
});
