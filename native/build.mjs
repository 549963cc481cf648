#!/usr/bin/env node
// Builds the CimFS emulator (native/emulator/cimfs_emulator.c) into
// native/build/ with the system C compiler. Run by `npm install` / `npm ci`
// (through the package's prepare script) and by `npm run build:native`.
// `--target win32-x64` cross-builds the same source into a Windows
// native/build/win32-x64/cimfs.dll with mingw-w64 (the Windows lane).
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emulatorLibraryName } from './library-name.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'emulator', 'cimfs_emulator.c');
const targetArg = process.argv.indexOf('--target');
const target = targetArg > 0 ? process.argv[targetArg + 1] : null;
if (target !== null && target !== 'win32-x64') {
  console.error(`cimq: unknown build target ${JSON.stringify(target)}; the one cross target is win32-x64`);
  process.exit(2);
}
const cross = target === 'win32-x64';
const outDir = cross ? join(here, 'build', 'win32-x64') : join(here, 'build');
const output = join(outDir, emulatorLibraryName(cross ? 'win32' : process.platform));

if (process.platform === 'win32' && !cross) {
  // On Windows cimq uses the real cimfs.dll (CIMQ_BACKEND=cimfs); the
  // emulator is a stand-in for machines that do not have it.
  console.log('cimq: Windows host, skipping the CimFS emulator build (the cimfs backend uses cimfs.dll)');
  process.exit(0);
}

const cc = cross ? process.env.CC_WIN32 || 'x86_64-w64-mingw32-gcc' : process.env.CC || 'cc';
mkdirSync(outDir, { recursive: true });
try {
  if (statSync(output).mtimeMs >= statSync(source).mtimeMs) {
    console.log(`cimq: CimFS emulator up to date (${output})`);
    process.exit(0);
  }
} catch {
  // not built yet
}

// The DLL links only KERNEL32 and msvcrt (no libgcc or winpthread DLLs to ship).
const args = cross
  ? ['-O2', '-Wall', '-Wextra', '-std=c11', '-shared', '-static-libgcc', '-o', output, source]
  : ['-O2', '-Wall', '-Wextra', '-std=c11', '-fPIC', '-fvisibility=hidden', '-shared', '-o', output, source, '-lpthread'];
// CI builds treat warnings as errors; a user's install should not fail on a newer compiler's warning.
if (process.env.CI) args.unshift('-Werror');
const result = spawnSync(cc, args, { stdio: 'inherit' });
if (result.error) {
  const hint = cross
    ? 'install mingw-w64 (Debian/Ubuntu: apt-get install gcc-mingw-w64-x86-64) or set CC_WIN32'
    : process.platform === 'linux'
    ? 'install one (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc) or set CC'
    : 'install the platform C toolchain (macOS: xcode-select --install) or set CC';
  console.error(`cimq: cannot build the CimFS emulator: no C compiler "${cc}" (${result.error.message}); ${hint}, then run npm run build:native`);
  process.exit(1);
}
if (result.status !== 0) {
  console.error(`cimq: building the CimFS emulator failed (${cc} exited ${result.status}); see the compiler output above`);
  process.exit(result.status ?? 1);
}
console.log(`cimq: built CimFS emulator ${output}`);
