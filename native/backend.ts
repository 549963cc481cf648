// The one place that knows which CimFS implementation answers: cimfs.dll on
// Windows, or the emulator library elsewhere. Everything above this file sees
// the same Backend, whichever it is.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { guidStruct, loadCimfs } from './cimfs.js';
import { toUnsigned } from './hresult.js';
import { emulatorLibraryName } from './library-name.mjs';

export type BackendKind = 'cimfs' | 'emulator';
export const BACKEND_KINDS: readonly BackendKind[] = ['cimfs', 'emulator'];

export function defaultBackendKind(platform: NodeJS.Platform = process.platform): BackendKind {
  return platform === 'win32' ? 'cimfs' : 'emulator';
}

/**
 * Where the library is found: cimfs.dll by name, so Windows' normal DLL search
 * (System32) finds it; the emulator from the build output of `npm install`.
 */
export function defaultLibraryPath(kind: BackendKind): string {
  if (kind === 'cimfs') return 'cimfs.dll';
  // dist/native/backend.js → <package>/native/build/
  const buildDir = fileURLToPath(new URL('../../native/build/', import.meta.url));
  return path.join(buildDir, emulatorLibraryName(process.platform));
}

export interface Backend {
  readonly kind: BackendKind;
  /** CimMountImage(dirname(cimPath), basename(cimPath), flags, guid); unsigned HRESULT. */
  mount(cimPath: string, volumeGuid: string, flags: number): number;
  /** CimDismountImage(guid); unsigned HRESULT. */
  dismount(volumeGuid: string): number;
  /** Whether a volume with this GUID is mounted now. */
  isMounted(volumeGuid: string): boolean;
  /**
   * GUIDs of every CimFS volume mounted now, or null where the backend cannot
   * tell CimFS volumes from others (cimfs.dll has no listing call).
   */
  listVolumes(): string[] | null;
}

export function openBackend(kind: BackendKind, libraryPath = defaultLibraryPath(kind)): Backend {
  if (kind === 'emulator' && !existsSync(libraryPath)) {
    throw new Error(`CimFS emulator library not found at ${libraryPath}; build it with "npm run build:native" (needs a C compiler)`);
  }
  let lib;
  try {
    lib = loadCimfs(libraryPath);
  } catch (err) {
    const hint = kind === 'cimfs'
      ? 'cimfs.dll ships with Windows 10/Server 2019 version 2004 and later; on other machines use CIMQ_BACKEND=emulator'
      : 'rebuild it with "npm run build:native"';
    throw new Error(`cannot load ${libraryPath}: ${(err as Error).message}; ${hint}`);
  }
  // The cim path is split as hcsshim does: filepath.Dir and filepath.Base.
  const mount = (cimPath: string, volumeGuid: string, flags: number) =>
    toUnsigned(lib.CimMountImage(path.dirname(cimPath), path.basename(cimPath), flags, guidStruct(volumeGuid)));
  const dismount = (volumeGuid: string) => toUnsigned(lib.CimDismountImage(guidStruct(volumeGuid)));

  if (kind === 'cimfs') {
    return {
      kind,
      mount,
      dismount,
      // As the seed does: the volume exists when its path can be stat'ed.
      isMounted: (volumeGuid) => {
        try {
          statSync(`\\\\?\\Volume{${volumeGuid}}\\`);
          return true;
        } catch {
          return false;
        }
      },
      listVolumes: () => null,
    };
  }
  return {
    kind,
    mount,
    dismount,
    // Read the root on each call: the emulator reads its environment per call.
    isMounted: (volumeGuid) => existsSync(path.join(lib.emulatorStateRoot() ?? '', `Volume{${volumeGuid}}`)),
    listVolumes: () => {
      let names: string[];
      try {
        names = readdirSync(lib.emulatorStateRoot() ?? '');
      } catch {
        return []; // no state directory yet: nothing mounted
      }
      return names.flatMap((n) => /^Volume\{([0-9a-f-]{36})\}$/.exec(n)?.[1] ?? []);
    },
  };
}
