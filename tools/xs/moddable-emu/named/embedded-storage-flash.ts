/** `embedded:storage/flash` by name: the installed emulation's flash module (default export, as the SDK's). */
import type { FlashModule } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

const Flash: FlashModule = Object.freeze({
  open: (options: { path: string; mode?: 'r' | 'r+' }) => installed().modules.flash.open(options),
});
export default Flash;
