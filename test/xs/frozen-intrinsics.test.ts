/**
 * The XS suites run with the built-ins frozen, as a Moddable device build
 * leaves them (tools/xs/freeze-intrinsics.ts). This checks the freeze itself
 * reproduces the device's fault, and that the firmware's error classes
 * survive it.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { bundleForXs } from '../../tools/xs/bundle.ts';
import { FREEZE_INTRINSICS_SOURCE } from '../../tools/xs/freeze-intrinsics.ts';
import { XsWorker } from '../../tools/xs/xsnap-worker.ts';

const open: XsWorker[] = [];
afterEach(() => {
  for (const worker of open.splice(0)) worker.close();
});

function frozenWorker(): XsWorker {
  const worker = XsWorker.spawn({ stdout: 'ignore' });
  open.push(worker);
  worker.evaluate(FREEZE_INTRINSICS_SOURCE);
  return worker;
}

function evalString(worker: XsWorker, expression: string): string {
  return new TextDecoder().decode(worker.evaluate(`new TextEncoder().encode(String(${expression})).buffer`).reply);
}

const firmware = (path: string): string => fileURLToPath(new URL(`../../firmware/${path}`, import.meta.url));

describe('frozen built-ins in XS', () => {
  it('reproduces the device fault: assigning name in an Error subclass throws TypeError', () => {
    const worker = frozenWorker();
    const result = evalString(
      worker,
      `(() => { 'use strict'; class E extends Error { constructor() { super('m'); this.name = 'E'; } } try { new E(); return 'no error'; } catch (e) { return e.constructor.name; } })()`,
    );
    assert.equal(result, 'TypeError');
    assert.equal(evalString(worker, 'Object.isFrozen(Error.prototype) && Object.isFrozen(Uint8Array.prototype) && Object.isFrozen(Object.getPrototypeOf(Uint8Array.prototype))'), 'true');
    assert.equal(evalString(worker, `(() => { globalThis.published = 1; return globalThis.published; })()`), '1', 'globalThis stays extensible');
  });

  it("every firmware error class constructs with its name under the freeze", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-frozen-'));
    try {
      const entry = join(dir, 'entry.ts');
      writeFileSync(
        entry,
        [
          `import { StorageError } from ${JSON.stringify(firmware('base/storage-error.ts'))};`,
          `import { UpdateError } from ${JSON.stringify(firmware('update/errors.ts'))};`,
          `import { OtadataError } from ${JSON.stringify(firmware('update/otadata.ts'))};`,
          `import { ReplayError } from ${JSON.stringify(firmware('security/replay-window.ts'))};`,
          `import { EnvelopeError } from ${JSON.stringify(firmware('security/envelope-format.ts'))};`,
          `import { MqttDecodeError } from ${JSON.stringify(firmware('protocol/mqtt/errors.ts'))};`,
          `export const make = () => [new StorageError('damaged', 'm'), new UpdateError('trust-unavailable', 'm'), new OtadataError('no-active-entry', 'm'),`,
          `  new ReplayError('not-fresh', 'm'), new EnvelopeError('counter-not-increasing', 'm'), new MqttDecodeError(0x81, 'm')].map((e) => e.name + ':' + (e instanceof Error)).join(',');`,
        ].join('\n'),
      );
      const worker = frozenWorker();
      worker.evaluate(await bundleForXs(entry, { globalName: 'frozenProbe' }));
      assert.equal(
        evalString(worker, 'frozenProbe.make()'),
        'StorageError:true,UpdateError:true,OtadataError:true,ReplayError:true,EnvelopeError:true,MqttDecodeError:true',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
