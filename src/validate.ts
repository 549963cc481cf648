// Input rules (DESIGN.md): every payload is checked before anything is
// written or any native call is made. A failure names the field.
import path from 'node:path';
import { z } from 'zod';
import { JOB_NAMES, KNOWN_MOUNT_FLAGS, DEFAULT_MOUNT_FLAGS, MAX_BATCH, type ParsedJob } from './contract.js';
import { CimqError } from './errors.js';

export type PathFlavor = 'win32' | 'posix';

export interface InputRules {
  /** How cim paths are spelled on the daemon's node. */
  flavor: PathFlavor;
  /** Absolute roots a cim path must lie under; empty allows any. */
  allowedRoots: readonly string[];
}

/** containerd's identifier rule. */
const CONTAINER_ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
export const MAX_CONTAINER_ID = 76;
/** The longest path Windows' wide APIs accept, in UTF-16 units. */
export const MAX_CIM_PATH = 32767;

const CONTROL = /[\u0000-\u001f\u007f]/;
const WIN_FORBIDDEN = /[<>:"|?*]/;
const WIN_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;

export function checkContainerId(id: string): string | null {
  if (id.length === 0) return 'must not be empty';
  if (id.length > MAX_CONTAINER_ID) return `must be at most ${MAX_CONTAINER_ID} characters (got ${id.length})`;
  if (!CONTAINER_ID.test(id)) {
    return 'must be letters and digits separated by single ".", "_" or "-" (containerd identifier rule)';
  }
  return null;
}

function checkWin32(p: string): string | null {
  if (p.startsWith('\\\\') || p.startsWith('//')) {
    return 'must be a local drive path like C:\\layers\\x.cim; UNC and device paths (\\\\server, \\\\?\\, \\\\.\\) are not allowed';
  }
  if (!/^[A-Za-z]:\\/.test(p)) return 'must be an absolute path with a drive letter, like C:\\layers\\x.cim';
  if (p.includes('/')) return 'must use backslashes only (normalized Windows path)';
  const parts = p.slice(3).split('\\');
  for (const part of parts) {
    if (part === '') return 'must be normalized: no empty components or trailing backslash';
    if (part === '.' || part === '..') return 'must not contain "." or ".." components';
    if (WIN_FORBIDDEN.test(part)) return 'must not contain < > : " | ? * after the drive';
    if (/[. ]$/.test(part)) return 'components must not end in a dot or space (Windows would strip them)';
    if (WIN_DEVICE.test(part)) return `must not name a device (${part})`;
  }
  return null;
}

function checkPosix(p: string): string | null {
  if (!p.startsWith('/')) return 'must be an absolute path';
  const parts = p.slice(1).split('/');
  for (const part of parts) {
    if (part === '') return 'must be normalized: no empty components or trailing slash';
    if (part === '.' || part === '..') return 'must not contain "." or ".." components';
  }
  return null;
}

function within(p: string, root: string, flavor: PathFlavor): boolean {
  const sep = flavor === 'win32' ? '\\' : '/';
  const norm = (s: string) => (flavor === 'win32' ? s.toLowerCase() : s);
  const r = norm(root.endsWith(sep) ? root.slice(0, -1) : root);
  return r === '' ? true : norm(p).startsWith(r + sep);
}

export function checkCimPath(p: string, rules: InputRules): string | null {
  if (p.length === 0) return 'must not be empty';
  if (p.length > MAX_CIM_PATH) return `must be at most ${MAX_CIM_PATH} UTF-16 units (got ${p.length})`;
  if (p.includes('\u0000')) return 'must not contain NUL';
  if (!p.isWellFormed()) return 'must be valid Unicode (it has an unpaired UTF-16 surrogate)';
  if (CONTROL.test(p)) return 'must not contain control characters';
  const err = rules.flavor === 'win32' ? checkWin32(p) : checkPosix(p);
  if (err) return err;
  if (rules.allowedRoots.length > 0 && !rules.allowedRoots.some((r) => within(p, r, rules.flavor))) {
    return `is outside the allowed roots (${rules.allowedRoots.join(rules.flavor === 'win32' ? ';' : ':')}); set CIMQ_ALLOWED_ROOTS on the daemon to allow it`;
  }
  return null;
}

/** Checks the roots themselves, so a bad CIMQ_ALLOWED_ROOTS fails at start-up. */
export function checkAllowedRoot(root: string, flavor: PathFlavor): string | null {
  const p = flavor === 'win32' ? path.win32 : path.posix;
  if (!p.isAbsolute(root)) return `allowed root ${JSON.stringify(root)} is not an absolute path`;
  if (root.includes('..')) return `allowed root ${JSON.stringify(root)} must not contain ".."`;
  return null;
}

function schemas(rules: InputRules) {
  const containerId = z.string().superRefine((v, ctx) => {
    const e = checkContainerId(v);
    if (e) ctx.addIssue({ code: 'custom', message: e });
  });
  const cimPath = z.string().superRefine((v, ctx) => {
    const e = checkCimPath(v, rules);
    if (e) ctx.addIssue({ code: 'custom', message: e });
  });
  const flags = z
    .number()
    .int()
    .refine((f) => f >= 0 && (f & ~KNOWN_MOUNT_FLAGS) === 0, {
      message: `must be a combination of CIM_MOUNT_IMAGE_FLAGS (0x${KNOWN_MOUNT_FLAGS.toString(16)} bits)`,
    });
  return {
    mount: z.strictObject({ containerId, cimPath, flags: flags.optional() }),
    unmount: z.strictObject({ containerId, cimPath }),
    cleanup: z.strictObject({ containerId }),
    'cleanup-batch': z.strictObject({ containerIds: z.array(containerId).min(1).max(MAX_BATCH), dryRun: z.boolean().optional() }),
    'cleanup-all-except': z.strictObject({ liveContainerIds: z.array(containerId).max(MAX_BATCH), dryRun: z.boolean().optional() }),
  };
}

export interface Validator {
  parse(name: string, data: unknown): ParsedJob;
}

function describe(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.join('.') : 'payload';
  return `${where}: ${issue.message}`;
}

/** A validator for one daemon's rules; throws INVALID_INPUT naming the field. */
export function createValidator(rules: InputRules): Validator {
  const s = schemas(rules);
  return {
    parse(name, data) {
      if (!(JOB_NAMES as readonly string[]).includes(name)) {
        const shown = JSON.stringify(String(name).slice(0, 64));
        throw new CimqError('INVALID_INPUT', `unknown job name ${shown}; expected one of ${JOB_NAMES.join(', ')}`);
      }
      const schema = s[name as keyof typeof s];
      const r = schema.safeParse(data);
      if (!r.success) {
        throw new CimqError('INVALID_INPUT', `${name}: ${r.error.issues.slice(0, 3).map(describe).join('; ')}`);
      }
      if (name === 'mount') {
        const d = r.data as { containerId: string; cimPath: string; flags?: number };
        return { name, data: { containerId: d.containerId, cimPath: d.cimPath, flags: d.flags ?? DEFAULT_MOUNT_FLAGS } };
      }
      return { name, data: r.data } as ParsedJob;
    },
  };
}
