// Volume GUIDs exactly as hcsshim computes them, so that hcsshim's
// CleanupContainerMounts and cimq can clean up each other's mounts.
import { v5 as uuidv5 } from 'uuid';

/**
 * hcsshim's namespace. The seed writes it as
 * `Data4: [8]byte{0x96, 0x1c, 0x6d, 0x2c, 0x93, 0x6c}`: six bytes listed,
 * Go zero-fills the last two, so the real namespace ends in `0000` — not the
 * `...-961c-6d2c936c` its comment claims.
 */
export const CIM_MOUNT_NAMESPACE = '6827367b-c388-4e9b-961c-6d2c936c0000';

const NAMESPACE_BYTES = parseUuid(CIM_MOUNT_NAMESPACE);

function parseUuid(s: string): Uint8Array {
  const hex = s.replace(/-/g, '');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * go-winio's guid.NewV5(namespace, []byte(containerID)): SHA-1 over the
 * namespace's big-endian bytes and the UTF-8 name, RFC 4122 version 5.
 */
export function volumeGuid(containerId: string): string {
  return uuidv5(new TextEncoder().encode(containerId), NAMESPACE_BYTES);
}

/** The mounted volume's path, `\\?\Volume{<guid>}\`, as cimfs reports it. */
export function volumePath(guid: string): string {
  return `\\\\?\\Volume{${guid}}\\`;
}
