// Stable error codes. Every failed job's failedReason starts with one of them
// and ": ", so any BullMQ consumer, in any language, can branch on it.
import { formatHresult, HRESULT } from '../native/hresult.js';

export const ERROR_CODES = [
  'INVALID_INPUT', // the payload breaks the job contract; fix the request
  'NOT_MOUNTED', // nothing mounted for (containerId, cimPath)
  'VOLUME_IN_USE', // the container's volume GUID is taken by another mount
  'IMAGE_NOT_FOUND', // the cim file or its directory does not exist on the node
  'CIMFS_ERROR', // cimfs.dll (or the emulator) failed with another HRESULT
  'NATIVE_TIMEOUT', // a CimFS call did not return in time; it still runs, and is reconciled when it does
  'TIMEOUT', // client side: no result in time (is a daemon running for the node?)
  'INTERNAL', // unexpected failure inside the daemon (Redis, pool); retried
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class CimqError extends Error {
  override name = 'CimqError';
  /** The message without the leading `CODE: `. */
  readonly detail: string;
  constructor(
    readonly code: ErrorCode,
    detail: string,
    readonly hresult?: number,
    /** Permanent errors are not retried by BullMQ. */
    readonly permanent = true,
  ) {
    super(`${code}: ${detail}`);
    this.detail = detail;
  }

  /** Rebuild a typed error from a failed job's failedReason. */
  static fromFailedReason(reason: string): CimqError {
    const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason);
    const code = m && (ERROR_CODES as readonly string[]).includes(m[1]!) ? (m[1] as ErrorCode) : 'INTERNAL';
    const detail = m && code !== 'INTERNAL' ? m[2]! : reason;
    const hr = /\((0x[0-9A-Fa-f]{8})\)/.exec(detail);
    return new CimqError(code, detail, hr ? Number(hr[1]) : undefined);
  }
}

/**
 * HRESULTs worth retrying: the driver or the machine was busy or short of
 * resources. Everything else (bad path, access denied, bad parameter) will
 * fail the same way again.
 */
const TRANSIENT = new Set<number>([
  HRESULT.NOT_ENOUGH_MEMORY,
  HRESULT.OUTOFMEMORY,
  HRESULT.GEN_FAILURE,
  HRESULT.SHARING_VIOLATION,
  HRESULT.LOCK_VIOLATION,
  HRESULT.SEM_TIMEOUT,
  HRESULT.BUSY,
  HRESULT.NO_SYSTEM_RESOURCES,
  HRESULT.WORKING_SET_QUOTA,
  HRESULT.TIMEOUT,
]);

export function isTransientHresult(hr: number): boolean {
  return TRANSIENT.has(hr >>> 0);
}

const DESCRIPTIONS = new Map<number, string>([
  [HRESULT.FILE_NOT_FOUND, 'The system cannot find the file specified.'],
  [HRESULT.PATH_NOT_FOUND, 'The system cannot find the path specified.'],
  [HRESULT.ACCESS_DENIED, 'Access is denied.'],
  [HRESULT.INVALID_PARAMETER, 'The parameter is incorrect.'],
  [HRESULT.ALREADY_EXISTS, 'Cannot create a file when that file already exists.'],
  [HRESULT.NOT_FOUND, 'Element not found.'],
  [HRESULT.GEN_FAILURE, 'A device attached to the system is not functioning.'],
  [HRESULT.SHARING_VIOLATION, 'The process cannot access the file because it is being used by another process.'],
]);

/** `<Windows text> (0x80070002)`, the way Go's errors print an HRESULT. */
export function describeHresult(hr: number): string {
  const text = DESCRIPTIONS.get(hr >>> 0) ?? 'CimFS call failed.';
  return `${text} (${formatHresult(hr)})`;
}
