// Copies the runtime files tsc does not emit into dist/: the cache's Lua
// scripts, and the emulator's file-name helper shared with native/build.mjs.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/src/lua', { recursive: true });
cpSync('src/lua', 'dist/src/lua', { recursive: true });
mkdirSync('dist/native', { recursive: true });
cpSync('native/library-name.mjs', 'dist/native/library-name.mjs');
