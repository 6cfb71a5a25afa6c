/** `socket` by name (named export Socket). */
import type { SocketInstance } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

export function Socket(options: { host: string; port: number }): SocketInstance {
  return new (installed().modules.Socket)(options);
}
