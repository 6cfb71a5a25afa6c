/**
 * Inside XS: serves a suite of firmware cases to the Node host. The host
 * sends `{"case": name}` through handleCommand; the case runs against remote
 * flash and the reply is `{"ok": true, "report": …}` or `{"ok": false, "error": …}`.
 */
import { encodeImage } from '../../sim/flash/image-codec.ts';
import type { CaseEnv, CaseSuite } from '../../../test/support/cases.ts';
import { fromUtf8, utf8 } from '../wire.ts';
import { saveImageOnHost } from './host-call.ts';
import { RemoteFlash } from './remote-flash.ts';

interface CaseRequest {
  case?: string;
  list?: boolean;
  /** The host's HOLDFAST_EXHAUSTIVE ('' when unset): read by exhaustiveTier() in tools/sim/power-cut.ts. */
  exhaustive?: string;
}

const XS_ENV: CaseEnv = Object.freeze<CaseEnv>({
  engine: 'xs',
  createFlash: RemoteFlash.create,
  saveFailureImage: (name, snapshot) => saveImageOnHost(name, encodeImage(snapshot)),
});

export function serveSuite(suite: CaseSuite): void {
  (globalThis as { handleCommand?: (request: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const message = JSON.parse(fromUtf8(new Uint8Array(request))) as CaseRequest;
    return toBuffer(utf8(JSON.stringify(answer(suite, message))));
  };
}

function answer(suite: CaseSuite, message: CaseRequest): unknown {
  if (message.list) return { ok: true, names: suite.cases.map((c) => c.name) };
  const found = suite.cases.find((c) => c.name === message.case);
  if (!found) return { ok: false, error: `no case named ${JSON.stringify(message.case)} in ${suite.name}` };
  (globalThis as { HOLDFAST_EXHAUSTIVE?: string }).HOLDFAST_EXHAUSTIVE = message.exhaustive ?? '';
  try {
    return { ok: true, report: found.run(XS_ENV) ?? {} };
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    return { ok: false, error: `${e.name}: ${e.message}`, stack: e.stack ?? '' };
  }
}

function toBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
