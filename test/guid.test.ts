import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { volumeGuid, volumePath, CIM_MOUNT_NAMESPACE } from '../dist/src/index.js';

// Vectors computed by hcsshim's own Go code (guid.NewV5 with the seed's namespace).
const rows = readFileSync(new URL('./volume-guid.tsv', import.meta.url), 'utf8')
  .trimEnd()
  .split('\n')
  .slice(1)
  .map((line) => {
    const [input, guid, path] = line.split('\t');
    return { containerId: JSON.parse(input!) as string, guid: guid!, path: path! };
  });

describe('volume GUIDs match hcsshim bit for bit', () => {
  it('has all 20 vectors', () => {
    expect(rows).toHaveLength(20);
  });

  it.each(rows)('$guid', ({ containerId, guid, path }) => {
    expect(volumeGuid(containerId)).toBe(guid);
    expect(volumePath(volumeGuid(containerId))).toBe(path);
  });

  it('uses the zero-filled namespace, not the one the seed comment claims', () => {
    expect(CIM_MOUNT_NAMESPACE).toBe('6827367b-c388-4e9b-961c-6d2c936c0000');
  });
});
