// koffi binding of the two cimfs.dll entry points cimq uses. The emulator in
// native/emulator exports the same symbols with the same ABI, so this file
// binds either one. Load it only inside a worker thread: the main thread must
// never load the native library.
import koffi from 'koffi';

// Declared once per thread: koffi type names are global to its instance.
const GUID = koffi.struct('GUID', {
  Data1: 'uint32',
  Data2: 'uint16',
  Data3: 'uint16',
  Data4: koffi.array('uint8', 8),
});

export interface GuidStruct {
  Data1: number;
  Data2: number;
  Data3: number;
  Data4: number[];
}

/** `6827367b-c388-4e9b-961c-6d2c936c0000` → the GUID struct Windows lays out. */
export function guidStruct(guid: string): GuidStruct {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a GUID: ${guid}`);
  const data4: number[] = [];
  for (let i = 16; i < 32; i += 2) data4.push(parseInt(hex.slice(i, i + 2), 16));
  return {
    Data1: parseInt(hex.slice(0, 8), 16),
    Data2: parseInt(hex.slice(8, 12), 16),
    Data3: parseInt(hex.slice(12, 16), 16),
    Data4: data4,
  };
}

export interface CimfsLibrary {
  /** HRESULT CimMountImage(PCWSTR dir, PCWSTR name, CIM_MOUNT_IMAGE_FLAGS, const GUID*) */
  CimMountImage(imageContainingPath: string, imageName: string, flags: number, volumeId: GuidStruct): number;
  /** HRESULT CimDismountImage(const GUID*) */
  CimDismountImage(volumeId: GuidStruct): number;
  /** Emulator only: the state directory, or null for the real cimfs.dll. */
  emulatorStateRoot(): string | null;
}

export function loadCimfs(libraryPath: string): CimfsLibrary {
  const lib = koffi.load(libraryPath);
  const mount = lib.func('__stdcall', 'CimMountImage', 'int32', ['str16', 'str16', 'uint32', koffi.pointer(GUID)]);
  const dismount = lib.func('__stdcall', 'CimDismountImage', 'int32', [koffi.pointer(GUID)]);
  let stateRoot: ((buf: Buffer, len: number) => number) | null = null;
  try {
    stateRoot = lib.func('CimEmulatorStateRoot', 'int32', ['void *', 'uint32']);
  } catch {
    stateRoot = null; // the real cimfs.dll has no such export
  }
  return {
    CimMountImage: (dir, name, flags, guid) => mount(dir, name, flags, guid) as number,
    CimDismountImage: (guid) => dismount(guid) as number,
    emulatorStateRoot() {
      if (!stateRoot) return null;
      let buf = Buffer.alloc(4096);
      let n = stateRoot(buf, buf.length);
      if (n >= buf.length) {
        buf = Buffer.alloc(n + 1);
        n = stateRoot(buf, buf.length);
      }
      return buf.toString('utf8', 0, n);
    },
  };
}
