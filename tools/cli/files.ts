/**
 * File access for the CLI: inputs are checked (exists, a regular file, not
 * larger than the format allows) before a byte is read; images are hashed
 * as a stream; outputs are written atomically (temporary file, fsync,
 * rename), several files together only after all of them were written to
 * their temporary names, renamed in an order the caller chooses so that
 * every prefix leaves a usable state. Errors are CliErrors naming the path.
 */
import { closeSync, createReadStream, fsyncSync, linkSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { CliError, fromNodeError } from './errors.ts';
import { forgetOnExit, removeOnExit } from './cleanup.ts';

/** The stats of an input that must be a regular file of at most `maxBytes` (checked before any read). */
export function statInput(path: string, what: string, maxBytes?: number): Stats {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw fromNodeError(error, path, what);
  }
  if (stats.isDirectory()) throw new CliError(`is a directory: expected ${what}`, { file: path, code: 'not-a-file' });
  if (!stats.isFile()) throw new CliError(`is not a regular file: expected ${what}`, { file: path, code: 'not-a-file' });
  if (maxBytes !== undefined && stats.size > maxBytes) throw new CliError(`is ${stats.size} bytes: expected ${what} of at most ${maxBytes} bytes`, { file: path, code: 'too-large' });
  return stats;
}

/** The bytes of a regular file of at most `maxBytes`: the size is checked first, and never more than `maxBytes` are read. */
export function readInput(path: string, what: string, maxBytes: number): Uint8Array {
  statInput(path, what, maxBytes);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // The file may grow between stat and read: read at most maxBytes + 1 to notice.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > maxBytes) throw new CliError(`grew beyond ${maxBytes} bytes while being read: expected ${what}`, { file: path, code: 'too-large' });
    }
    return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
  } catch (error) {
    throw fromNodeError(error, path, what);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Text of a regular file of at most `maxBytes`, decoded as UTF-8. */
export function readTextInput(path: string, what: string, maxBytes: number): string {
  return Buffer.from(readInput(path, what, maxBytes)).toString('utf8');
}

/** SHA-256 and length of a file, streamed (memory does not grow with the file); at most `maxBytes`. */
export async function hashInput(path: string, what: string, maxBytes: number): Promise<{ digest: Uint8Array; length: number }> {
  statInput(path, what, maxBytes);
  const hash = createHash('sha256');
  let length = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      length += (chunk as Buffer).length;
      if (length > maxBytes) throw new CliError(`grew beyond ${maxBytes} bytes while being read: expected ${what}`, { file: path, code: 'too-large' });
      hash.update(chunk as Buffer);
    }
  } catch (error) {
    throw fromNodeError(error, path, what);
  }
  return { digest: new Uint8Array(hash.digest()), length };
}

/** An output path must not be a directory, and its folder must exist. Checked before any work is written. */
export function checkOutputPath(path: string, what: string): void {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats?.isDirectory()) throw new CliError(`is a directory: expected a path for ${what}`, { file: path, code: 'not-a-file' });
  const parent = statSync(dirname(path), { throwIfNoEntry: false });
  if (parent === undefined) throw new CliError(`does not exist: expected the folder for ${what}`, { file: dirname(path), code: 'not-found' });
  if (!parent.isDirectory()) throw new CliError(`is not a directory: expected the folder for ${what}`, { file: dirname(path), code: 'not-a-directory' });
}

export interface OutputFile {
  path: string;
  data: Uint8Array | string;
  /** File mode (default 0o644). */
  mode?: number;
  /** Refuse to replace an existing file (default false: replace it atomically). */
  exclusive?: boolean;
  /** What the file is, for errors ("the manifest"). */
  what: string;
}

/**
 * Write `files` atomically, in order: first every file to a temporary name
 * next to its target (a failure there removes them all and changes
 * nothing), then each is renamed into place in the given order. A crash or
 * interrupt during the renames leaves a prefix of the list in place: the
 * caller orders the list so that every prefix is safe.
 */
export function writeFilesAtomically(files: readonly OutputFile[]): void {
  const temps: string[] = [];
  const cleanup = (): void => {
    for (const temp of temps) {
      try {
        unlinkSync(temp);
      } catch {
        // already renamed or never made
      }
      forgetOnExit(temp);
    }
  };
  try {
    for (const file of files) {
      if (file.exclusive && statSync(file.path, { throwIfNoEntry: false }) !== undefined) {
        throw new CliError(`already exists: refusing to overwrite ${file.what}`, { file: file.path, code: 'exists' });
      }
      const temp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      let fd: number | undefined;
      try {
        fd = openSync(temp, 'wx', file.mode ?? 0o644);
        temps.push(temp);
        removeOnExit(temp);
        const bytes = typeof file.data === 'string' ? Buffer.from(file.data, 'utf8') : file.data;
        for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
        fsyncSync(fd);
      } catch (error) {
        throw fromNodeError(error, file.path, `a writable path for ${file.what}`);
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    files.forEach((file, i) => {
      try {
        if (file.exclusive) {
          // link() fails if the target appeared meanwhile: never replace it.
          linkSync(temps[i], file.path);
          unlinkSync(temps[i]);
        } else renameSync(temps[i], file.path);
      } catch (error) {
        throw fromNodeError(error, file.path, `a writable path for ${file.what}`);
      }
      forgetOnExit(temps[i]);
    });
    syncDirectories(files.map((f) => dirname(f.path)));
  } finally {
    cleanup();
  }
}

/** Rename `from` to `to` (same folder tree), with a one-line error naming both. */
export function moveFile(from: string, to: string, what: string): void {
  try {
    renameSync(from, to);
  } catch (error) {
    throw fromNodeError(error, from, `${what} to move to ${to}`);
  }
}

function syncDirectories(dirs: readonly string[]): void {
  for (const dir of new Set(dirs)) {
    try {
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // Not every file system syncs directories; the renames are done.
    }
  }
}

/** An output folder must be a folder or creatable: its nearest existing ancestor is a folder. Checked before work starts. */
export function checkOutputDir(path: string, what: string): void {
  let at = resolve(path);
  for (;;) {
    const stats = statSync(at, { throwIfNoEntry: false });
    if (stats !== undefined) {
      if (!stats.isDirectory()) throw new CliError(`is not a directory: expected ${at === resolve(path) ? what : `a folder to create ${what} in`}`, { file: at === resolve(path) ? path : at, code: 'not-a-directory' });
      return;
    }
    const parent = dirname(at);
    if (parent === at) return;
    at = parent;
  }
}
