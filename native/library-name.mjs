// The emulator's file name per platform; shared by the build script and the
// binding so both agree on where the library is.
export function emulatorLibraryName(platform) {
  if (platform === 'win32') return 'cimfs.dll';
  if (platform === 'darwin') return 'libcimfs_emulator.dylib';
  return 'libcimfs_emulator.so';
}
