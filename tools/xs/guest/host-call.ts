/**
 * Inside XS: one synchronous call to the Node host. `issueCommand` is the
 * xsnap worker's global; it takes and returns ArrayBuffers.
 */
import { concatBytes, fromUtf8, ReplyStatus, Service, utf8 } from '../wire.ts';

declare const issueCommand: (request: ArrayBuffer) => ArrayBuffer;

export function callHost(request: Uint8Array): Uint8Array {
  const buffer = request.byteOffset === 0 && request.byteLength === request.buffer.byteLength ? request.buffer : request.slice().buffer;
  return new Uint8Array(issueCommand(buffer as ArrayBuffer));
}

/** Ask the host to store a failing run's flash image; returns its path. */
export function saveImageOnHost(name: string, image: Uint8Array): string | undefined {
  const reply = callHost(concatBytes(Uint8Array.of(Service.SAVE_IMAGE), utf8(name), Uint8Array.of(0), image));
  return reply[0] === ReplyStatus.OK ? fromUtf8(reply.subarray(1)) : undefined;
}

export function logOnHost(text: string): void {
  callHost(concatBytes(Uint8Array.of(Service.LOG), utf8(text)));
}
