// HRESULTs that cimfs.dll answers with (HRESULT_FROM_WIN32 of Win32 errors),
// and that the emulator mirrors. Kept as unsigned numbers for display.
export const HRESULT = {
  S_OK: 0x0,
  FILE_NOT_FOUND: 0x80070002,
  PATH_NOT_FOUND: 0x80070003,
  ACCESS_DENIED: 0x80070005,
  NOT_ENOUGH_MEMORY: 0x80070008,
  OUTOFMEMORY: 0x8007000e,
  GEN_FAILURE: 0x8007001f,
  SHARING_VIOLATION: 0x80070020,
  LOCK_VIOLATION: 0x80070021,
  INVALID_PARAMETER: 0x80070057,
  SEM_TIMEOUT: 0x80070079,
  BUSY: 0x800700aa,
  ALREADY_EXISTS: 0x800700b7,
  NOT_FOUND: 0x80070490,
  NO_SYSTEM_RESOURCES: 0x800705aa,
  WORKING_SET_QUOTA: 0x800705ad,
  TIMEOUT: 0x800705b4,
} as const;

/** Native calls return a signed int32; cimq reports HRESULTs unsigned. */
export function toUnsigned(hr: number): number {
  return hr >>> 0;
}

export function formatHresult(hr: number): string {
  return `0x${toUnsigned(hr).toString(16).toUpperCase().padStart(8, '0')}`;
}
