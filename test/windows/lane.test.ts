// The Windows lane: the daemon as a Windows node.exe under Wine, on the
// cimfs backend (koffi loading "cimfs.dll" by name, found in System32:
// there, the emulator's source built with mingw-w64), against this Linux
// Redis. Driven from Linux through the public job contract only.
// Run by scripts/windows-lane.mjs, which prepares everything it needs.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CimqClient, type CimqError } from '../../dist/src/index.js';
import { createTestEnv, type TestEnv } from '../support/env.js';

const NODE_EXE = process.env.CIMQ_WINDOWS_NODE;
const APP = process.env.CIMQ_WINDOWS_APP;
const DRIVE_C = process.env.CIMQ_WINDOWS_DRIVE_C;
if (!NODE_EXE || !APP || !DRIVE_C || !process.env.WINEPREFIX) {
  throw new Error('run the Windows lane with "npm run test:windows" (scripts/windows-lane.mjs prepares Wine, node.exe and the DLL)');
}

/** A Linux path as the Windows process sees it (Wine maps Z: to /). */
const winPath = (p: string) => `Z:${p.replaceAll('/', '\\')}`;

/** hcsshim's GUIDs, computed by the Go code (shared vectors), by container id. */
const VECTORS = new Map(readFileSync(path.join(import.meta.dirname, '..', 'volume-guid.tsv'), 'utf8')
  .trim().split('\n').slice(1).map((line) => {
    const [json, guid, volumePath] = line.split('\t');
    return [JSON.parse(json!) as string, { guid: guid!, volumePath: volumePath! }] as const;
  }));
function vector(containerId: string) {
  const v = VECTORS.get(containerId);
  if (!v) throw new Error(`no shared vector for ${containerId}`);
  return v;
}

interface WindowsDaemon {
  node: string;
  proc: ChildProcess;
  log: string;
  stop(): Promise<void>;
}

let env: TestEnv;
let work: string;
let emulatorRoot: string;
let layersWin: string;
let layersLinux: string;
const daemons: WindowsDaemon[] = [];

/** Starts `cimq worker` under Wine; resolves once it has published its status in Redis. */
async function startWindowsDaemon(node: string, extraEnv: Record<string, string> = {}): Promise<WindowsDaemon> {
  const log = path.join(work, `${node}.log`);
  // node.exe's console output must go to a file: a pipe breaks it under Wine 8.
  const fd = openSync(log, 'w');
  const proc = spawn('wine', [NODE_EXE!, winPath(path.join(APP!, 'dist', 'src', 'cli.js')), 'worker'], {
    env: {
      ...process.env,
      REDIS_URL: env.redisUrl, CIMQ_PREFIX: env.prefix, CIMQ_NODE: node, CIMQ_HTTP_PORT: 'off', CIMQ_THREADS: '2',
      CIMQ_ALLOWED_ROOTS: 'C:\\layers', CIMFS_EMULATOR_ROOT: winPath(emulatorRoot), CIMQ_LOG_LEVEL: 'info', ...extraEnv,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const d: WindowsDaemon = {
    node, proc, log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
  daemons.push(d);
  const statusKey = `${env.prefix}:{${node}}:status`;
  for (let i = 0; i < 600; i++) {
    if (await env.redis.exists(statusKey)) return d;
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the Windows daemon for ${node} did not come up; its log:\n${readFileSync(log, 'utf8')}`);
}

function status(node: string): Promise<Record<string, unknown>> {
  return env.redis.get(`${env.prefix}:{${node}}:status`).then((s) => JSON.parse(s ?? '{}') as Record<string, unknown>);
}

/** A cim file at C:\layers\<run>\<rel>, created through the prefix's drive_c. */
function cim(rel: string): string {
  const linux = path.join(layersLinux, ...rel.split('\\'));
  mkdirSync(path.dirname(linux), { recursive: true });
  writeFileSync(linux, 'cim image');
  return `${layersWin}\\${rel}`;
}

function volumeDir(guid: string): string {
  return path.join(emulatorRoot, `Volume{${guid}}`);
}

/** What the DLL recorded it received, as key → value. */
function record(guid: string): Record<string, string> {
  const text = readFileSync(path.join(volumeDir(guid), 'mount.txt'), 'utf8');
  return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

let client: CimqClient;
let faulty: CimqClient;

beforeAll(async () => {
  env = await createTestEnv('win');
  work = mkdtempSync(path.join(tmpdir(), 'cimq-win-'));
  emulatorRoot = path.join(work, 'emulator');
  const run = path.basename(work);
  layersWin = `C:\\layers\\${run}`;
  layersLinux = path.join(DRIVE_C!, 'layers', run);
  await Promise.all([
    startWindowsDaemon(env.node),
    // A second node whose cimfs.dll fails its first mount with ACCESS_DENIED,
    // and its first dismount with a sharing violation (a transient error).
    startWindowsDaemon(`${env.node}-faulty`, { CIMFS_EMULATOR_FAIL: 'mount:0x80070005:1,dismount:0x80070020:1' }),
  ]);
  client = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: env.node, timeoutMs: 30_000 });
  faulty = new CimqClient({ redisUrl: env.redisUrl, prefix: env.prefix, node: `${env.node}-faulty`, timeoutMs: 30_000 });
});

afterAll(async () => {
  await client?.close();
  await faulty?.close();
  await Promise.all(daemons.map((d) => d.stop()));
  rmSync(layersLinux, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  await env?.dispose();
});

describe('the daemon on Windows (Wine), cimfs backend', () => {
  it('runs as a Windows process on the cimfs backend', async () => {
    const s = await status(env.node);
    expect(s).toMatchObject({ backend: 'cimfs', threads: 2 });
    expect(readFileSync(daemons[0]!.log, 'utf8')).toContain('"backend":"cimfs"');
  });

  it('mounts: the path reaches cimfs.dll intact (spaces, non-ASCII) and the volume is hcsshim\'s', async () => {
    const id = 'container1';
    const cimPath = cim('日本\\layer one.cim');
    const r = await client.mount({ containerId: id, cimPath });
    expect(r).toMatchObject({ volumeGuid: vector(id).guid, volumePath: vector(id).volumePath, alreadyMounted: false });
    expect(r.volumePath).toMatch(/^\\\\\?\\Volume\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}\\$/);
    // CimMountImage(filepath.Dir, filepath.Base, flags, &guid), as hcsshim calls it.
    expect(record(vector(id).guid)).toMatchObject({
      image: cimPath, dir: `${layersWin}\\日本`, name: 'layer one.cim', flags: `0x${r.flags.toString(16)}`,
    });
  });

  it('mounts idempotently and answers the path from the cache', async () => {
    const id = 'container1';
    const cimPath = `${layersWin}\\日本\\layer one.cim`;
    await expect(client.mount({ containerId: id, cimPath })).resolves.toMatchObject({ alreadyMounted: true, volumePath: vector(id).volumePath });
    await expect(client.getMountPath(cimPath, id)).resolves.toBe(vector(id).volumePath);
    expect(readdirSync(emulatorRoot).filter((n) => n.startsWith('Volume{'))).toEqual([`Volume{${vector(id).guid}}`]);
  });

  it('unmounts, then says NOT_MOUNTED', async () => {
    const id = 'container1';
    const cimPath = `${layersWin}\\日本\\layer one.cim`;
    await expect(client.unmount(id, cimPath)).resolves.toMatchObject({ volumePath: vector(id).volumePath });
    expect(existsSync(volumeDir(vector(id).guid))).toBe(false);
    await expect(client.unmount(id, cimPath)).rejects.toMatchObject({ code: 'NOT_MOUNTED' });
  });

  it('cleans up a container', async () => {
    const id = 'e22fa0638bc10571fc59b3e753ee1aea4fd03de14e6be13d23062317a8b9c681';
    const cimPath = cim('with space\\ümlaut layer.cim');
    await client.mount({ containerId: id, cimPath, flags: 0x4 });
    expect(record(vector(id).guid)).toMatchObject({ name: 'ümlaut layer.cim', flags: '0x4' });
    await expect(client.cleanup(id)).resolves.toEqual({ containerId: id, unmounted: [vector(id).volumePath] });
    expect(existsSync(volumeDir(vector(id).guid))).toBe(false);
    await expect(client.list({ containerId: id })).resolves.toEqual([]);
  });

  it('fails a missing image with IMAGE_NOT_FOUND and leaves nothing', async () => {
    const id = 'UPPER-lower-123';
    const err = (await client.mount({ containerId: id, cimPath: `${layersWin}\\missing.cim` }).catch((e: unknown) => e)) as CimqError;
    expect(err).toMatchObject({ code: 'IMAGE_NOT_FOUND', hresult: 0x80070002 });
    expect(err.message).toContain(vector(id).guid);
    await expect(client.list({ containerId: id })).resolves.toEqual([]);
  });

  it('validates paths as Windows paths', async () => {
    await expect(client.mount({ containerId: 'k8s_POD_nginx_default_1234', cimPath: '/layers/a.cim' }))
      .rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(client.mount({ containerId: 'k8s_POD_nginx_default_1234', cimPath: 'D:\\elsewhere\\a.cim' }))
      .rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});

describe('HRESULTs from cimfs.dll, mapped to error codes', () => {
  it('a permanent one (ACCESS_DENIED) fails once with CIMFS_ERROR and the HRESULT', async () => {
    const id = 'k8s_POD_nginx_default_1234';
    const err = (await faulty.mount({ containerId: id, cimPath: cim('denied.cim') }).catch((e: unknown) => e)) as CimqError;
    expect(err).toMatchObject({ code: 'CIMFS_ERROR', hresult: 0x80070005 });
    expect(err.message).toContain('Access is denied');
    await expect(faulty.list({ containerId: id })).resolves.toEqual([]);
  });

  it('a transient one (SHARING_VIOLATION) is retried, and the retry succeeds', async () => {
    const id = 'k8s_POD_nginx_default_1234';
    const cimPath = `${layersWin}\\denied.cim`;
    await expect(faulty.mount({ containerId: id, cimPath })).resolves.toMatchObject({ volumePath: vector(id).volumePath });
    await expect(faulty.unmount(id, cimPath)).resolves.toMatchObject({ volumePath: vector(id).volumePath });
    expect(existsSync(volumeDir(vector(id).guid))).toBe(false);
    const log = readFileSync(daemons[1]!.log, 'utf8');
    expect(log).toContain('0x80070020');
    expect(log).toContain('will retry');
  });
});
