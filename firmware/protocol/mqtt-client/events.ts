/**
 * What the MQTT client reports (docs/design/mqtt-client.md): every session
 * event (docs/spec/mqtt-session.md) unchanged, plus the client's own. One
 * tagged union, so the runtime can audit by `kind` without string parsing.
 */
import type { SessionEvent } from '../mqtt-session/index.ts';

/** Why a connection ended. */
export const CloseCause = Object.freeze({
  /** The stream reported an error or the peer closed it (`onError`). */
  STREAM: 'stream',
  /** The session asked to close (refusal, protocol error, dead link, server DISCONNECT). */
  SESSION: 'session',
  /** The write queue would have grown past its bound. */
  WRITE_OVERFLOW: 'write-overflow',
  /** The transport did not become writable (connected) within the connect timeout. */
  CONNECT_TIMEOUT: 'connect-timeout',
  /** `stop()` was called. */
  STOPPED: 'stopped',
});
export type CloseCauseName = (typeof CloseCause)[keyof typeof CloseCause];

export type ClientOwnEvent =
  /** A transport connection is being opened; `attempt` counts consecutive attempts since the last CONNACK 0 (0 = first). */
  | { readonly kind: 'connecting'; readonly host: string; readonly port: number; readonly attempt: number; readonly protocolVersion: number }
  /** The transport is up; CONNECT is being written. */
  | { readonly kind: 'transport-open' }
  /** The connection is gone; `detail` is the stream's reason or the session event that ended it. */
  | { readonly kind: 'closed'; readonly cause: CloseCauseName; readonly detail: string }
  /** The next attempt waits `delayMs` (full jitter within `ceilingMs`). */
  | { readonly kind: 'backoff'; readonly attempt: number; readonly delayMs: number; readonly ceilingMs: number }
  /** The session's output did not fit the write queue: `queuedBytes` + `addBytes` > `limitBytes`. The connection is closed. */
  | { readonly kind: 'write-overflow'; readonly queuedBytes: number; readonly addBytes: number; readonly limitBytes: number }
  /** The broker refused our protocol version and the policy forbids falling back: the version stays. */
  | { readonly kind: 'refused-no-fallback'; readonly protocolVersion: number; readonly reasonCode: number }
  /** The broker refused MQTT 5 and the policy (`fallbackTo311`) allows 3.1.1: later CONNECTs carry level 4. */
  | { readonly kind: 'protocol-fallback'; readonly from: number; readonly to: number; readonly reasonCode: number };

export type ClientEvent = SessionEvent | ClientOwnEvent;
