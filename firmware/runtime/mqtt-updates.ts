/**
 * Updates over MQTT (docs/spec/device-topics.md, "Updates"): the runtime's
 * side of the update topic. A signed manifest arrives; the update agent's
 * `install` is called with an image source that holds at most the one chunk
 * it asked for last; each call stages what has arrived and answers
 * 'pending' with the next offset and length (one erase block), which the
 * device asks for with update-request records (type 0x05) in its telemetry
 * stream, in pieces of at most `maxChunk` bytes (so a chunk message fits the
 * MQTT Maximum Packet Size the device announced), assembled in one block
 * buffer; the cloud side is a simple responder. The last block makes
 * `install` verify, select the image for a trial and restart.
 *
 * Resumable: after a power cut the staging progress log still names the
 * download in progress (its tag and chunks done), so the first connection
 * asks for that manifest again and staging resumes at the first chunk
 * without a progress entry; after a link loss the request for the chunk
 * wanted is repeated on the next CONNACK (and every `retryMs` while
 * connected and nothing arrives). RAM: one manifest (≤ MAX_MANIFEST_LENGTH)
 * and one block (the agent's erase block); every length is bounded by the
 * decoder before it is copied.
 */
import type { FlashPartition } from '../hal/flash.ts';
import type { Log } from '../hal/log.ts';
import { elapsedMs } from '../base/ticks.ts';
import { StorageError } from '../base/storage-error.ts';
import type { UpdateAgent } from '../update/agent.ts';
import { decodeImageManifest } from '../update/manifest.ts';
import { imageTag, type ImageSource } from '../update/staging.ts';
import { StagingProgress } from '../update/staging-progress.ts';
import { decodeUpdateMessage, encodeUpdateRequest, MAX_CHUNK_LENGTH, UpdateMessageError, type UpdateRequest } from '../update/update-messages.ts';

export interface MqttUpdatesDeps {
  readonly agent: UpdateAgent;
  /** The staging progress partition: read once, to resume a download a cut interrupted. */
  readonly progress: FlashPartition;
  /** Append a record to the telemetry stream; false when the outbox refused it. */
  append(payload: Uint8Array): boolean;
  /** The link is connected now (requests are not queued while it is not: the next CONNACK asks). */
  connected(): boolean;
  /** Offers are taken now (not during a trial boot: the inactive slot is the rollback target). */
  accepting(): boolean;
  readonly log: Log;
}

export interface MqttUpdatesOptions {
  /** Ask again after this long without the chunk (default 30 s). */
  readonly retryMs?: number;
  /** The largest chunk asked for at once (default and at most MAX_CHUNK_LENGTH). */
  readonly maxChunk?: number;
}

/** The largest chunk whose message on `topic` fits an MQTT 5 packet of `maximumPacketSize` bytes (fixed header, topic, packet id, properties, chunk header), in whole 256-byte units. */
export function chunkLengthFor(maximumPacketSize: number, topic: string): number {
  const room = maximumPacketSize - topic.length - 48;
  return Math.max(256, Math.min(MAX_CHUNK_LENGTH, Math.floor(room / 256) * 256));
}

export interface MqttUpdatesStats {
  readonly manifests: number;
  readonly chunks: number;
  readonly requests: number;
  /** Messages that were well formed but not wanted now (another image, another offset, during a trial). */
  readonly ignored: number;
  readonly malformed: number;
  readonly refused: number;
  /** The block the agent waits for, while a download is in progress, and how much of it arrived. */
  readonly wanted: { readonly tag: number; readonly offset: number; readonly length: number; readonly filled: number } | undefined;
  /** A download a cut interrupted, waiting for its manifest. */
  readonly resumeTag: number | undefined;
}

export const DEFAULT_UPDATE_RETRY_MS = 30_000;

export class MqttUpdates {
  private readonly deps: MqttUpdatesDeps;
  private readonly retryMs: number;
  private readonly maxChunk: number;
  private offer: Uint8Array | undefined;
  private offerTag: number | undefined;
  /** The manifest bytes the agent refused in this boot: not tried again until different bytes arrive. */
  private refusedOffer: Uint8Array | undefined;
  private wanted: { tag: number; offset: number; length: number; filled: number; buffer: Uint8Array } | undefined;
  private chunk: { offset: number; bytes: Uint8Array } | undefined;
  private requestedAt: number | undefined;
  private resumeTag: number | undefined;
  private counts = { manifests: 0, chunks: 0, requests: 0, ignored: 0, malformed: 0, refused: 0 };

  constructor(deps: MqttUpdatesDeps, options: MqttUpdatesOptions = {}) {
    this.deps = deps;
    this.retryMs = options.retryMs ?? DEFAULT_UPDATE_RETRY_MS;
    this.maxChunk = Math.max(1, Math.min(MAX_CHUNK_LENGTH, Math.floor(options.maxChunk ?? MAX_CHUNK_LENGTH)));
    try {
      const session = StagingProgress.open(deps.progress).session();
      if (session !== undefined && !session.complete && session.tag !== 0 && session.imageLength > 0) this.resumeTag = session.tag;
    } catch (error) {
      // The agent reports an unreadable progress log (blockedBy); nothing to resume here.
      if (!(error instanceof StorageError)) throw error;
    }
  }

  stats(): MqttUpdatesStats {
    const w = this.wanted;
    return { ...this.counts, wanted: w === undefined ? undefined : { tag: w.tag, offset: w.offset, length: w.length, filled: w.filled }, resumeTag: this.resumeTag };
  }

  /** A new connection: ask again for what is wanted (a request in flight may have been lost with the link). */
  onConnected(now: number): void {
    if (this.wanted !== undefined) this.requestPiece(now);
    else if (this.offer === undefined && this.resumeTag !== undefined) this.request({ kind: 'manifest', tag: this.resumeTag, offset: 0, length: 0 }, now);
  }

  /** The periodic turn: ask again when nothing arrived for `retryMs` while connected. */
  tick(now: number): void {
    if (this.requestedAt === undefined || !this.deps.connected()) return;
    if (elapsedMs(this.requestedAt, now) < this.retryMs) return;
    this.onConnected(now);
  }

  /** A message on the update topic. May not return: the last chunk restarts the device into its trial. */
  onMessage(payload: Uint8Array, now: number): void {
    let message;
    try {
      message = decodeUpdateMessage(payload);
    } catch (error) {
      if (!(error instanceof UpdateMessageError)) throw error;
      this.counts.malformed++;
      this.deps.log.write('warn', 'update', 'update message refused', { code: error.code, error: error.message });
      return;
    }
    if (!this.deps.accepting()) {
      this.counts.ignored++;
      return;
    }
    if (message.kind === 'manifest') this.onManifest(message.manifest, now);
    else this.onChunk(message.tag, message.offset, message.bytes, now);
  }

  private onManifest(manifest: Uint8Array, now: number): void {
    if ((this.offer !== undefined && sameBytes(this.offer, manifest)) || (this.refusedOffer !== undefined && sameBytes(this.refusedOffer, manifest))) {
      this.counts.ignored++;
      return;
    }
    this.counts.manifests++;
    this.offer = manifest;
    this.wanted = undefined;
    this.chunk = undefined;
    try {
      this.offerTag = imageTag(decodeImageManifest(manifest).manifest.imageDigest);
    } catch {
      // The agent refuses it with its reason (and audits it) in step().
      this.offerTag = undefined;
    }
    this.step(now);
  }

  private onChunk(tag: number, offset: number, bytes: Uint8Array, now: number): void {
    const wanted = this.wanted;
    if (this.offer === undefined || wanted === undefined || tag !== wanted.tag || offset !== wanted.offset + wanted.filled || bytes.length !== this.pieceLength(wanted)) {
      this.counts.ignored++;
      return;
    }
    this.counts.chunks++;
    wanted.buffer.set(bytes, wanted.filled);
    wanted.filled += bytes.length;
    if (wanted.filled < wanted.length) {
      this.requestPiece(now);
      return;
    }
    this.chunk = { offset: wanted.offset, bytes: wanted.buffer };
    this.step(now);
  }

  private step(now: number): void {
    const offer = this.offer;
    if (offer === undefined) return;
    const source: ImageSource = {
      read: (offset, length) => {
        const chunk = this.chunk;
        if (chunk === undefined || chunk.offset !== offset || chunk.bytes.length !== length) return undefined;
        this.chunk = undefined;
        return chunk.bytes;
      },
    };
    const outcome = this.deps.agent.install(offer, source);
    if (outcome.reason === 'pending' && outcome.next !== undefined && this.offerTag !== undefined) {
      this.resumeTag = undefined;
      const { offset, length } = outcome.next;
      // One erase block at most (the agent's chunk): the buffer is reused while blocks keep their length.
      const buffer = this.wanted !== undefined && this.wanted.buffer.length === length ? this.wanted.buffer : new Uint8Array(length);
      this.wanted = { tag: this.offerTag, offset, length, filled: 0, buffer };
      this.requestPiece(now);
      return;
    }
    // Refused (the agent audited why): forget the offer until other bytes come.
    this.counts.refused++;
    this.refusedOffer = offer;
    this.offer = undefined;
    this.offerTag = undefined;
    this.wanted = undefined;
    this.chunk = undefined;
    this.requestedAt = undefined;
  }

  private pieceLength(wanted: { length: number; filled: number }): number {
    return Math.min(this.maxChunk, wanted.length - wanted.filled);
  }

  /** Ask for the next piece of the block the agent waits for. */
  private requestPiece(now: number): void {
    const wanted = this.wanted;
    if (wanted === undefined) return;
    this.request({ kind: 'chunk', tag: wanted.tag, offset: wanted.offset + wanted.filled, length: this.pieceLength(wanted) }, now);
  }

  private request(request: UpdateRequest, now: number): void {
    this.requestedAt = now;
    if (!this.deps.connected()) return;
    if (this.deps.append(encodeUpdateRequest(request))) this.counts.requests++;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
