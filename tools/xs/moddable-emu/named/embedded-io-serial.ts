/** `embedded:io/serial` by name (default export: the Serial class). */
import type { SerialInstance, SerialOptions } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

function Serial(options: SerialOptions): SerialInstance {
  const Class = installed().modules.Serial;
  if (Class === undefined) throw new Error('no embedded:io/serial in this emulation');
  return new Class(options);
}
export default Serial;
