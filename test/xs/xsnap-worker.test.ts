import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as vm from 'node:vm';

import { bundleForXs } from '../../tools/xs/bundle.ts';
import { XsExitError, XsUncaughtError, XsWorker, type XsWorkerOptions } from '../../tools/xs/xsnap-worker.ts';
import { signAndVerify } from './fixtures/ed25519-roundtrip.ts';
import { zeroIsZero } from './fixtures/self-instantiating-class.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const utf8 = new TextDecoder();

const open: XsWorker[] = [];
function spawnWorker(options: XsWorkerOptions = {}): XsWorker {
  const worker = XsWorker.spawn({ stdout: 'ignore', ...options });
  open.push(worker);
  return worker;
}
afterEach(() => {
  for (const worker of open.splice(0)) worker.close();
});

/** Evaluates an expression in XS and returns String(value). */
function evalString(worker: XsWorker, expression: string): string {
  return utf8.decode(worker.evaluate(`new TextEncoder().encode(String(${expression})).buffer`).reply);
}

describe('XsWorker.evaluate', () => {
  it('returns the ArrayBuffer the script evaluates to, with a meter', () => {
    const worker = spawnWorker();
    const { reply, meter } = worker.evaluate('new Uint8Array([1, 2, 3, 250]).buffer');
    assert.deepEqual([...reply], [1, 2, 3, 250]);
    assert.equal(typeof meter.compute, 'number');
    assert.equal(typeof meter.currentHeapCount, 'number');
    assert.ok(meter.compute > 0);
    assert.ok(meter.currentHeapCount > 0);

    assert.deepEqual([...worker.evaluate('({ result: new Uint8Array([9]).buffer })').reply], [9]);
    assert.equal(worker.evaluate('42').reply.length, 0, 'non-ArrayBuffer results give an empty reply');
  });

  it('drains promise jobs before replying', () => {
    const worker = spawnWorker();
    worker.evaluate('globalThis.log = []; (async () => { await null; log.push("a"); await null; log.push("b"); })();');
    assert.equal(evalString(worker, 'log.join()'), 'a,b');
  });

  it('meters compute deterministically across fresh workers', () => {
    const code = `
      let seed = 1;
      const xs = Array.from({ length: 2000 }, () => (seed = (seed * 1103515245 + 12345) % 2147483648));
      xs.sort((a, b) => a - b);
      new Float64Array([xs[0], xs[1999]]).buffer`;
    const runs = [0, 1].map(() => {
      const worker = spawnWorker();
      const result = worker.evaluate(code);
      worker.close();
      return result;
    });
    assert.ok(runs[0]!.meter.compute > 10_000, `compute ${runs[0]!.meter.compute} should reflect the work`);
    assert.equal(runs[0]!.meter.compute, runs[1]!.meter.compute);
    assert.deepEqual(runs[0]!.reply, runs[1]!.reply);
  });
});

describe('issueCommand', () => {
  for (const size of [16, 4096]) {
    it(`round-trips 20,000 ${size}-byte commands intact`, () => {
      const count = 20_000;
      // Requests and replies carry the iteration number at both ends and a
      // fixed byte pattern in between. The host checks every request byte;
      // XS (an interpreter, ~100x slower per byte) checks the ends of every
      // reply and every byte of every 97th, so the rate reflects transport.
      const requestByte = (j: number): number => (j * 7) & 255;
      const replyPattern = Uint8Array.from({ length: size }, (_, j) => (j * 13 + 1) & 255);
      let badRequests = 0;
      let seen = 0;
      const worker = spawnWorker({
        onCommand(request) {
          const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
          const i = view.getUint32(0, true);
          if (request.length !== size || i !== seen || view.getUint32(size - 4, true) !== (i ^ 0x5a5a5a5a) >>> 0) badRequests++;
          for (let j = 4; j < size - 4; j++) if (request[j] !== requestByte(j)) badRequests++;
          seen++;
          const reply = replyPattern.slice();
          const out = new DataView(reply.buffer);
          out.setUint32(0, (i * 3) >>> 0, true);
          out.setUint32(size - 4, ~i >>> 0, true);
          return reply;
        },
      });
      const started = performance.now();
      const { reply } = worker.evaluate(`{
        const size = ${size};
        const req = new Uint8Array(size);
        for (let j = 0; j < size; j++) req[j] = (j * 7) & 255;
        const view = new DataView(req.buffer);
        let badReplies = 0;
        for (let i = 0; i < ${count}; i++) {
          view.setUint32(0, i, true);
          view.setUint32(size - 4, (i ^ 0x5a5a5a5a) >>> 0, true);
          const rep = new DataView(issueCommand(req.buffer));
          if (rep.byteLength !== size || rep.getUint32(0, true) !== (i * 3) >>> 0 || rep.getUint32(size - 4, true) !== ~i >>> 0) badReplies++;
          else if (i % 97 === 0) {
            for (let j = 4; j < size - 4; j++) if (rep.getUint8(j) !== ((j * 13 + 1) & 255)) { badReplies++; break; }
          }
        }
        new Uint32Array([badReplies]).buffer;
      }`);
      const seconds = (performance.now() - started) / 1000;
      assert.equal(seen, count);
      assert.equal(badRequests, 0, 'requests arrive intact');
      assert.equal(new DataView(reply.buffer, reply.byteOffset).getUint32(0, true), 0, 'replies arrive intact');
      console.log(`issueCommand ${size} B: ${Math.round(count / seconds)} round trips/s`);
    });
  }

  it('can switch handlers with setCommandHandler', () => {
    const worker = spawnWorker({ onCommand: () => new Uint8Array([1]) });
    const call = 'new Uint8Array(issueCommand(new ArrayBuffer(0)))[0]';
    assert.equal(evalString(worker, call), '1');
    worker.setCommandHandler(() => new Uint8Array([2]));
    assert.equal(evalString(worker, call), '2');
  });
});

describe('XsWorker.command', () => {
  it('calls the global handleCommand with the request bytes', () => {
    const worker = spawnWorker({ onCommand: (request) => request.map((b) => b + 1) });
    worker.evaluate(`globalThis.handleCommand = (buf) => {
      const text = new TextDecoder().decode(buf);
      const echoed = new Uint8Array(issueCommand(new Uint8Array([10, 20]).buffer));
      return new TextEncoder().encode(text.toUpperCase() + ':' + echoed.join()).buffer;
    };`);
    const { reply, meter } = worker.command(new TextEncoder().encode('ping'));
    assert.equal(utf8.decode(reply), 'PING:11,21');
    assert.ok(meter.compute > 0);
  });
});

describe('failures', () => {
  it('reports an uncaught XS exception and stays usable', () => {
    const worker = spawnWorker();
    assert.throws(
      () => worker.evaluate('null.boom'),
      (err: unknown) => err instanceof XsUncaughtError && /TypeError/.test(err.message),
    );
    assert.throws(() => worker.evaluate('throw new RangeError("custom text")'), {
      name: 'XsUncaughtError',
      message: 'RangeError: custom text',
    });
    assert.equal(evalString(worker, '6 * 7'), '42');
  });

  it('reports a worker killed by its metering limit (exit code 17)', () => {
    const worker = spawnWorker({ meteringLimit: 100_000 });
    assert.equal(evalString(worker, '1 + 1'), '2');
    let caught: unknown;
    assert.throws(() => worker.evaluate('for (;;) {}'), (err: unknown) => {
      caught = err;
      return err instanceof XsExitError && err.exitCode === 17 && err.signal === null && /too much computation/.test(err.message);
    });
    assert.throws(() => worker.evaluate('1'), (err: unknown) => err === caught, 'a dead worker keeps reporting why');
  });

  it('surfaces a throwing command handler from evaluate and keeps the protocol intact', () => {
    const handlerError = new Error('handler exploded');
    let calls = 0;
    const worker = spawnWorker({
      onCommand: () => {
        calls++;
        throw handlerError;
      },
    });
    assert.throws(() => worker.evaluate('issueCommand(new ArrayBuffer(1))'), (err: unknown) => err === handlerError);
    // Even if XS swallows the failed issueCommand and carries on, the host reports it.
    assert.throws(
      () => worker.evaluate('for (let i = 0; i < 5; i++) { try { issueCommand(new ArrayBuffer(1)); } catch {} }'),
      (err: unknown) => err === handlerError,
    );
    assert.equal(calls, 2, 'after a failure the handler is not called again within that evaluate');
    worker.setCommandHandler((request) => request);
    assert.equal(evalString(worker, 'new Uint8Array(issueCommand(new Uint8Array([7]).buffer))[0]'), '7');
  });

  it('rejects re-entrant calls from a command handler without wedging', () => {
    const worker = spawnWorker();
    worker.setCommandHandler(() => worker.evaluate('1').reply);
    assert.throws(() => worker.evaluate('issueCommand(new ArrayBuffer(0))'), /busy/);
    assert.equal(evalString(worker, '"still fine"'), 'still fine');
  });
});

describe('XS-only failures that Node does not show', () => {
  it('class instantiating itself in a static initializer: fails in XS with native class fields, works with es2021', async () => {
    assert.equal(zeroIsZero(), true, 'the fixture works in Node');

    const esnext = await bundleForXs(fixture('self-instantiating-class.ts'), { globalName: 'fx', target: 'esnext' });
    assert.match(esnext, /static ZERO = new/, 'esnext keeps the native static field');
    const context = vm.createContext({});
    vm.runInContext(esnext, context);
    assert.equal(vm.runInContext('fx.zeroIsZero()', context), true, 'the esnext bundle works in Node');

    assert.throws(
      () => spawnWorker().evaluate(esnext),
      (err: unknown) => err instanceof XsUncaughtError && /not initialized yet/.test(err.message),
    );

    const worker = spawnWorker();
    worker.evaluate(await bundleForXs(fixture('self-instantiating-class.ts'), { globalName: 'fx' }));
    assert.equal(evalString(worker, 'fx.zeroIsZero()'), 'true');
  });

  it('the "use strict" banner turns a silently ignored frozen write into a TypeError', async () => {
    const worker = spawnWorker();
    worker.evaluate(await bundleForXs(fixture('frozen-write.ts'), { globalName: 'strictBundle' }));
    assert.match(evalString(worker, 'strictBundle.tryWrite()'), /^TypeError: /);

    // Counterfactual: the same IIFE without the banner (and without a tsconfig
    // whose `strict` makes esbuild add the directive itself) runs sloppy.
    const esbuild = await import('esbuild');
    const sloppy = await esbuild.build({
      entryPoints: [fixture('frozen-write.ts')],
      bundle: true,
      write: false,
      format: 'iife',
      platform: 'neutral',
      target: 'es2021',
      globalName: 'sloppyBundle',
      tsconfigRaw: {},
    });
    worker.evaluate(sloppy.outputFiles[0]!.text);
    assert.equal(evalString(worker, 'sloppyBundle.tryWrite()'), 'no error, retries=3');
  });

  it('runs the real @noble/ed25519 bundle in XS with the same result as Node', async () => {
    const worker = spawnWorker();
    worker.evaluate(await bundleForXs(fixture('ed25519-roundtrip.ts'), { globalName: 'ed' }));
    const inXs = evalString(worker, 'ed.signAndVerify()');
    assert.match(inXs, /^true:[0-9a-f]{128}$/);
    assert.equal(inXs, signAndVerify());
  });
});

describe('lifecycle', () => {
  it('runs two workers side by side without interference', () => {
    const a = spawnWorker({ onCommand: () => new Uint8Array([0xa]) });
    const b = spawnWorker({ onCommand: () => new Uint8Array([0xb]) });
    assert.notEqual(a.tempDir, b.tempDir);
    a.evaluate('globalThis.name = "a"');
    b.evaluate('globalThis.name = "b"');
    const ask = 'name + new Uint8Array(issueCommand(new ArrayBuffer(0)))[0]';
    for (let i = 0; i < 3; i++) {
      assert.equal(evalString(a, ask), 'a10');
      assert.equal(evalString(b, ask), 'b11');
    }
    assert.throws(() => a.evaluate('throw 1'), XsUncaughtError);
    assert.equal(evalString(b, 'name'), 'b');
  });

  it('close() is idempotent and removes the temp directory', () => {
    const worker = XsWorker.spawn({ stdout: 'ignore' });
    const dir = worker.tempDir;
    assert.ok(fs.existsSync(dir));
    worker.close();
    assert.equal(fs.existsSync(dir), false);
    worker.close();
    assert.throws(() => worker.evaluate('1'), /closed/);
  });

  it('close() also cleans up after a dead worker', () => {
    const worker = XsWorker.spawn({ stdout: 'ignore', meteringLimit: 10_000 });
    assert.throws(() => worker.evaluate('for (;;) {}'), XsExitError);
    worker.close();
    assert.equal(fs.existsSync(worker.tempDir), false);
  });
});
