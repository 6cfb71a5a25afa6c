/** `securesocket` by name (default export SecureSocket). */
import type { SocketInstance } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

function SecureSocket(options: { host: string; port: number; secure?: Readonly<Record<string, unknown>> }): SocketInstance {
  const Class = installed().modules.SecureSocket;
  if (Class === undefined) throw new Error('no securesocket in this emulation');
  return new Class(options);
}
export default SecureSocket;
