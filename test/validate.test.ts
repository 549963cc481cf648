import { describe, expect, it } from 'vitest';
import { createValidator, CimqError } from '../dist/src/index.js';

const posix = createValidator({ flavor: 'posix', allowedRoots: ['/var/lib/layers'] });
const win = createValidator({ flavor: 'win32', allowedRoots: ['C:\\layers'] });
const open = createValidator({ flavor: 'posix', allowedRoots: [] });

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CimqError);
    expect((err as CimqError).code).toBe('INVALID_INPUT');
    return (err as Error).message;
  }
  throw new Error('expected INVALID_INPUT');
}

describe('payload validation', () => {
  it('accepts a good mount and fills in the default flags (CacheFiles)', () => {
    expect(posix.parse('mount', { containerId: 'c1', cimPath: '/var/lib/layers/a.cim' })).toEqual({
      name: 'mount', data: { containerId: 'c1', cimPath: '/var/lib/layers/a.cim', flags: 4 },
    });
    expect(win.parse('unmount', { containerId: 'k8s_POD-1.a', cimPath: 'C:\\layers\\日本\\layer.cim' }).name).toBe('unmount');
    expect(win.parse('mount', { containerId: 'a', cimPath: 'c:\\LAYERS\\x.cim', flags: 0x24 }).data).toMatchObject({ flags: 0x24 });
  });

  it('rejects unknown job names', () => {
    expect(reason(() => posix.parse('format', { containerId: 'c1' }))).toMatch(/^INVALID_INPUT: unknown job name "format"/);
  });

  it.each([
    ['not an object', 'x', /payload/],
    ['null', null, /payload/],
    ['missing containerId', { cimPath: '/var/lib/layers/a.cim' }, /containerId/],
    ['numeric containerId', { containerId: 5, cimPath: '/var/lib/layers/a.cim' }, /containerId/],
    ['extra field', { containerId: 'c', cimPath: '/var/lib/layers/a.cim', evil: 1 }, /evil/],
    ['bad separator', { containerId: 'a__b', cimPath: '/var/lib/layers/a.cim' }, /containerId.*containerd/],
    ['slash in id', { containerId: 'a/b', cimPath: '/var/lib/layers/a.cim' }, /containerId/],
    ['77-char id', { containerId: 'a'.repeat(77), cimPath: '/var/lib/layers/a.cim' }, /containerId: must be at most 76/],
    ['relative path', { containerId: 'c', cimPath: 'layers/a.cim' }, /cimPath: must be an absolute path/],
    ['dot-dot', { containerId: 'c', cimPath: '/var/lib/layers/../../etc/x' }, /cimPath: must not contain "\." or "\.\."/],
    ['NUL', { containerId: 'c', cimPath: '/var/lib/layers/a\u0000.cim' }, /cimPath: must not contain NUL/],
    ['lone surrogate', { containerId: 'c', cimPath: '/var/lib/layers/\ud800.cim' }, /cimPath: must be valid Unicode/],
    ['outside roots', { containerId: 'c', cimPath: '/etc/a.cim' }, /cimPath: is outside the allowed roots/],
    ['root prefix trick', { containerId: 'c', cimPath: '/var/lib/layersX/a.cim' }, /outside the allowed roots/],
    ['too long', { containerId: 'c', cimPath: '/var/lib/layers/' + 'a'.repeat(40000) }, /at most 32767/],
    ['bad flags', { containerId: 'c', cimPath: '/var/lib/layers/a.cim', flags: 0x40 }, /flags/],
    ['fractional flags', { containerId: 'c', cimPath: '/var/lib/layers/a.cim', flags: 1.5 }, /flags/],
  ])('mount: %s', (_label, data, pattern) => {
    expect(reason(() => posix.parse('mount', data))).toMatch(pattern);
  });

  it.each([
    ['UNC', '\\\\server\\share\\a.cim'],
    ['device namespace', '\\\\?\\C:\\layers\\a.cim'],
    ['device path', '\\\\.\\PhysicalDrive0'],
    ['forward slashes', 'C:/layers/a.cim'],
    ['no drive', '\\layers\\a.cim'],
    ['dot-dot', 'C:\\layers\\..\\Windows\\a.cim'],
    ['trailing dot', 'C:\\layers\\a.cim.'],
    ['device name', 'C:\\layers\\NUL.cim'],
    ['stream', 'C:\\layers\\a.cim:stream'],
    ['outside roots', 'D:\\layers\\a.cim'],
  ])('windows cimPath rejects %s', (_label, cimPath) => {
    expect(reason(() => win.parse('unmount', { containerId: 'c', cimPath }))).toMatch(/^INVALID_INPUT: unmount: cimPath: /);
  });

  it('without allowed roots accepts any absolute normalized path', () => {
    expect(open.parse('unmount', { containerId: 'c', cimPath: '/anywhere/a.cim' }).name).toBe('unmount');
  });

  it('cleanup takes only a container id', () => {
    expect(posix.parse('cleanup', { containerId: 'c-1' })).toEqual({ name: 'cleanup', data: { containerId: 'c-1' } });
    expect(reason(() => posix.parse('cleanup', { containerId: 'c-1', cimPath: '/var/lib/layers/a.cim' }))).toMatch(/cimPath/);
  });
});
