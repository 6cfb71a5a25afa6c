/**
 * A real pseudo-terminal pair from Debian's socat
 * (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`): the two device paths are
 * read from its stderr ("N PTY is /dev/pts/N"), ready once it logs
 * "starting data transfer loop". Closing the pair (killing socat) is how the
 * tests pull the cable. `findSocat` follows tools/net/common.ts: a test
 * whose socat is missing skips locally and fails under CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { findTool, type Found } from '../../tools/net/common.ts';

export function findSocat(): Found {
  // `socat -V` prints "socat version 1.7.4.4 …".
  return findTool('socat', ['-V'], 'socat', ['/usr/bin', '/usr/local/bin']);
}

export interface PtyPair {
  /** [emulator end, holdfast end]. */
  readonly paths: readonly [string, string];
  readonly process: ChildProcess;
  /** Kill socat (idempotent); resolves once it has exited. */
  close(): Promise<void>;
}

export function openPtyPair(socat: string): Promise<PtyPair> {
  return new Promise((resolve, reject) => {
    const child = spawn(socat, ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    let log = '';
    let settled = false;
    const close = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      void close();
      reject(new Error(`socat did not report two ptys within 30 s: ${log}`));
    }, 30_000);
    child.stderr?.on('data', (chunk: Buffer) => {
      if (settled) return;
      log += chunk.toString('utf8');
      const paths = [...log.matchAll(/PTY is (\S+)/g)].map((m) => m[1]);
      if (paths.length >= 2 && log.includes('starting data transfer loop')) {
        settled = true;
        clearTimeout(timer);
        resolve({ paths: [paths[0], paths[1]], process: child, close });
      }
    });
    child.once('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`socat exited (${code ?? signal}) before reporting two ptys: ${log}`));
    });
  });
}
