// glibc through koffi, loaded once and only when something asks for it (the kernel clock,
// kernel receive timestamps, sd_notify). Never throws: an agent without koffi, or not on Linux,
// gets the reason and falls back (virtual clock, user-space stamps, no readiness message).
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');

export interface Libc {
  koffi: Koffi;
  libc: ReturnType<Koffi['load']>;
}

let cached: Libc | { error: string } | null = null;

export function loadLibc(): Libc | { error: string } {
  cached ??= load();
  return cached;
}

function load(): Libc | { error: string } {
  if (process.platform !== 'linux') return { error: `needs Linux (this is ${process.platform})` };
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    return { error: `cannot load koffi (${(error as Error).message.split('\n')[0]}); reinstall with npm ci` };
  }
  try {
    // glibc's soname first; the process's own symbols (any libc already mapped) as a fallback.
    let libc: ReturnType<Koffi['load']>;
    try {
      libc = koffi.load('libc.so.6');
    } catch {
      libc = koffi.load(null);
    }
    return { koffi, libc };
  } catch (error) {
    return { error: `cannot load libc through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}
