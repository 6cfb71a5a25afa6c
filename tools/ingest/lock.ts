/**
 * One process per ingest database (PGlite is single-process: two opening
 * one data directory would corrupt it). `<dir>/lock` holds the owner's
 * pid, created with O_EXCL; a lock whose pid no longer runs (the owner was
 * SIGKILLed) is taken over. A pid reused by an unrelated process keeps the
 * lock held: remove the file by hand after checking.
 *
 * Host tool (Node).
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class LockedError extends Error {
  constructor(readonly file: string, readonly pid: number) {
    super(`in use by process ${pid}: expected a database no running ingest holds`);
    this.name = 'LockedError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take `<dir>/lock` (creating `dir`); returns the release function. */
export function acquireLock(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let pid = NaN;
      try {
        pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      } catch {
        continue;
      }
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) throw new LockedError(file, pid);
      // Stale (its process is gone) or unreadable: take it over.
      try {
        unlinkSync(file);
      } catch {
        // someone else took it over first; retry
      }
    }
  }
  throw new Error(`could not take the lock ${file}`);
}
