// The daemon as users run it: `cimq worker` in its own process, driven by
// the `cimq` CLI in others.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { volumeGuid, volumePath } from '../dist/src/index.js';
import { CLI, createTestEnv, runCli, type TestEnv } from './support/env.js';
import { spawnDaemon, type DaemonProcess } from './support/daemon-process.js';

let env: TestEnv;
let daemon: DaemonProcess;

const cimq = (...args: string[]) => runCli(env, {}, ...args);

beforeAll(async () => {
  env = await createTestEnv('cli');
  daemon = spawnDaemon(env);
  await daemon.ready;
});

afterAll(async () => {
  await daemon?.kill();
  await env.dispose();
});

describe('cimq CLI against a cimq worker child process', () => {
  it('mounts, shows, lists, unmounts and cleans up', async () => {
    const cim = env.cim('cli layer.cim');
    const vol = volumePath(volumeGuid('cli-1'));

    const m = await cimq('mount', cim, 'cli-1');
    expect(m).toMatchObject({ code: 0, stdout: `${vol}\n` });
    expect(env.mountedVolumes()).toEqual([`Volume{${volumeGuid('cli-1')}}`]);

    expect(await cimq('path', cim, 'cli-1')).toMatchObject({ code: 0, stdout: `${vol}\n` });

    const ls = await cimq('ls', '--json');
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ containerId: 'cli-1', cimPath: cim, volumePath: vol, state: 'mounted', flags: 4 })]);
    const table = await cimq('ls');
    expect(table.stdout).toContain('cli-1');
    expect(table.stdout).toContain('mounted');

    expect(await cimq('unmount', cim, 'cli-1')).toMatchObject({ code: 0, stdout: `unmounted ${vol}\n` });
    expect(env.mountedVolumes()).toEqual([]);
    expect(await cimq('ls')).toMatchObject({ code: 0, stdout: 'no mounts\n' });

    await cimq('mount', cim, 'cli-2');
    const dry = await cimq('cleanup', 'cli-2', 'cli-none', '--dry-run');
    expect(dry.stdout).toContain(`would unmount ${volumePath(volumeGuid('cli-2'))} (cli-2)`);
    expect(env.mountedVolumes()).toHaveLength(1);
    const c = await cimq('--json', 'cleanup', 'cli-2', 'cli-none');
    expect(JSON.parse(c.stdout)).toEqual({
      dryRun: false, total: 2, failures: [],
      unmounted: [{ containerId: 'cli-2', volumeGuid: volumeGuid('cli-2'), volumePath: volumePath(volumeGuid('cli-2')) }],
    });
    expect(c.stderr).toContain('cleanup: 2/2 done, 0 failed');
    expect(env.mountedVolumes()).toEqual([]);
  });

  it('cleans up from files (--from-file, --all-except); no ids at all is an input error', async () => {
    const dir = env.layers;
    for (const id of ['f-1', 'f-2', 'live-1']) expect((await cimq('mount', env.cim(`${id}.cim`), id)).code).toBe(0);
    writeFileSync(`${dir}/ids.txt`, '# dead ones\nf-1\n\n');
    const one = await cimq('--json', 'cleanup', '--from-file', `${dir}/ids.txt`);
    expect(JSON.parse(one.stdout)).toMatchObject({ total: 1, failures: [], unmounted: [{ containerId: 'f-1' }] });
    writeFileSync(`${dir}/live.txt`, 'live-1\n');
    const all = await cimq('cleanup', '--all-except', `${dir}/live.txt`);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(`unmounted ${volumePath(volumeGuid('f-2'))} (f-2)`);
    expect(all.stdout).not.toContain('live-1');
    expect(env.mountedVolumes()).toEqual([`Volume{${volumeGuid('live-1')}}`]);
    await cimq('cleanup', 'live-1');
    expect(await cimq('cleanup')).toMatchObject({ code: 1, stderr: expect.stringContaining('INVALID_INPUT: name containers to clean up') });
  });

  it('reports errors with their code and a non-zero exit', async () => {
    const cim = env.cim('never.cim');
    const r = await cimq('unmount', cim, 'cli-3');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cimq: NOT_MOUNTED: cim ${cim} not mounted`);
    const p = await cimq('path', cim, 'cli-3');
    expect(p.code).toBe(1);
    expect(p.stderr).toContain('NOT_MOUNTED');
    const bad = await cimq('mount', '/etc/hosts', 'cli-3');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_INPUT: mount: cimPath: is outside the allowed roots/);
  });

  it('logs the jobs it ran as JSON lines with job and container ids', () => {
    const lines = daemon.output().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'mounted', containerId: 'cli-1', volumeGuid: volumeGuid('cli-1'), jobId: expect.any(String) }));
  });

  it('stops cleanly on SIGTERM, exit code 0', async () => {
    daemon.proc.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(daemon.output()).toContain('cimq worker stopped');
  });
});

describe('start-up without Redis', () => {
  it('exits with a message that names the URL and how to start Redis', async () => {
    const { stderr, code } = await new Promise<{ stderr: string; code: number | null }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'worker'], {
        env: env.childEnv({ REDIS_URL: 'redis://user:hunter2@127.0.0.1:1' }), stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      p.stderr!.on('data', (d) => (err += d));
      p.on('exit', (c) => resolve({ stderr: err, code: c }));
    });
    expect(code).toBe(2);
    expect(stderr).toContain('cannot reach Redis at redis://user:***@127.0.0.1:1');
    expect(stderr).toContain('docker compose up -d redis');
    expect(stderr).toContain('apt-get install redis-server');
    expect(stderr).not.toContain('hunter2');
  });
});
