export function emulatorLibraryName(platform: string): string;
