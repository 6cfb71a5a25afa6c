/**
 * What a command created and must not leave behind if it is interrupted
 * (SIGINT, SIGTERM: bin/holdfast.js exits through process.exit, which runs
 * the 'exit' hooks): temporary files and folders. XS workers clean up their
 * own pipe folders on 'exit' (tools/xs/xsnap-worker.ts).
 */
import { rmSync } from 'node:fs';

const paths = new Set<string>();
let hooked = false;

/** Remove `path` (file or folder) when the process exits, unless forgotten first. */
export function removeOnExit(path: string): void {
  paths.add(path);
  if (!hooked) {
    hooked = true;
    process.on('exit', removeAll);
  }
}

export function forgetOnExit(path: string): void {
  paths.delete(path);
}

function removeAll(): void {
  for (const path of paths) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  paths.clear();
}
