/** `crypt` by name (named export Digest). */
import type { DigestInstance } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

export function Digest(type: 'SHA256'): DigestInstance {
  const Class = installed().modules.Digest;
  if (Class === undefined) throw new Error('Digest: unsupported');
  return new Class(type);
}
