/**
 * The cloud side of updates over MQTT (docs/spec/device-topics.md,
 * "Updates"): a responder that serves a signed manifest and its image to
 * devices that ask. It reads the devices' telemetry records (authenticated
 * with each device's keys, as the ingest does), answers an update request
 * (record type 0x05) with the manifest or the chunk asked for on the
 * device's update topic, and ignores every other record. Stateless per
 * device: the device asks for the next offset it needs, so a responder
 * restart, a lost chunk or a device power cut need nothing here.
 *
 * Engine-neutral (no Node imports): the runtime cases run it in XS too. The
 * fleet simulator (tools/sim/fleet/) can call `createUpdateResponder` and
 * route messages with `attachUpdateResponder` (any client with
 * subscribe/publish/on('message'), such as mqtt.js) or by hand
 * (`onTelemetry`, `offer`).
 */
import type { DeviceKeys } from '../../firmware/security/envelope-keys.ts';
import type { EnvelopePrimitives } from '../../firmware/security/envelope-primitives.ts';
import { authenticateEnvelope } from '../../firmware/security/envelope.ts';
import { EnvelopeError } from '../../firmware/security/envelope-format.ts';
import { decodeImageManifest } from '../../firmware/update/manifest.ts';
import { imageTag } from '../../firmware/update/staging.ts';
import { decodeUpdateRequest, encodeChunkMessage, encodeManifestMessage, UPDATE_REQUEST_TYPE, UpdateMessageError } from '../../firmware/update/update-messages.ts';

export interface UpdateOffer {
  readonly manifest: Uint8Array;
  readonly image: Uint8Array;
}

export interface UpdateResponderOptions {
  /** The offer a device (16 hex digits) gets now, or undefined (it is not updated). */
  offerFor(deviceHex: string): UpdateOffer | undefined;
  /** The device's keys for a key id (authenticates its records); undefined: unknown device, its records are ignored. */
  keysFor(deviceId: Uint8Array, keyId: number): DeviceKeys | undefined;
  readonly primitives: EnvelopePrimitives;
  /**
   * Optional gate (a staged rollout, tools/rollout/gate.ts): may this
   * device be served now? False: no manifest and no chunk, counted as
   * `gated`. Absent: every device `offerFor` answers is served.
   */
  allow?(deviceHex: string): boolean;
  /** Topic root (default 'holdfast'). */
  readonly root?: string;
}

export interface Outgoing {
  readonly topic: string;
  readonly payload: Uint8Array;
}

export interface UpdateResponderStats {
  manifestsSent: number;
  chunksSent: number;
  bytesSent: number;
  /** Requests for an image the responder does not offer that device, or beyond its end. */
  unanswerable: number;
  /** Records that did not authenticate or requests that did not decode. */
  refused: number;
  /** Offers and requests of devices the `allow` gate did not let through. */
  gated: number;
}

export interface UpdateResponder {
  /** A message the devices published on `holdfast/<id>/telemetry`: what to publish in answer. */
  onTelemetry(topic: string, envelope: Uint8Array): Outgoing[];
  /** Push the current offer's manifest to a device (the cloud starts an update). */
  offer(deviceHex: string): Outgoing[];
  stats(): Readonly<UpdateResponderStats>;
}

export function createUpdateResponder(options: UpdateResponderOptions): UpdateResponder {
  const root = options.root ?? 'holdfast';
  const stats: UpdateResponderStats = { manifestsSent: 0, chunksSent: 0, bytesSent: 0, unanswerable: 0, refused: 0, gated: 0 };
  const allowed = (hex: string): boolean => {
    if (options.allow === undefined || options.allow(hex)) return true;
    stats.gated++;
    return false;
  };
  const tags = new Map<UpdateOffer, number>();
  const tagOf = (offer: UpdateOffer): number => {
    let tag = tags.get(offer);
    if (tag === undefined) {
      tag = imageTag(decodeImageManifest(offer.manifest).manifest.imageDigest);
      tags.set(offer, tag);
    }
    return tag;
  };
  const updateTopic = (hex: string) => `${root}/${hex}/update`;
  const manifestTo = (hex: string, offer: UpdateOffer): Outgoing[] => {
    const payload = encodeManifestMessage(offer.manifest);
    stats.manifestsSent++;
    stats.bytesSent += payload.length;
    return [{ topic: updateTopic(hex), payload }];
  };

  return {
    stats: () => ({ ...stats }),
    offer(deviceHex) {
      if (!allowed(deviceHex)) return [];
      const offer = options.offerFor(deviceHex);
      return offer === undefined ? [] : manifestTo(deviceHex, offer);
    },
    onTelemetry(topic, envelope) {
      const parts = topic.split('/');
      if (parts.length !== 3 || parts[0] !== root || parts[2] !== 'telemetry' || !/^[0-9a-f]{16}$/.test(parts[1])) return [];
      const hex = parts[1];
      const deviceId = new Uint8Array(8);
      for (let i = 0; i < 8; i++) deviceId[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
      let payload: Uint8Array;
      try {
        payload = authenticateEnvelope(envelope, { primitives: options.primitives, deviceId, keys: (id, keyId) => options.keysFor(id, keyId) }).payload;
      } catch (error) {
        if (!(error instanceof EnvelopeError)) throw error;
        stats.refused++;
        return [];
      }
      if (payload[0] !== UPDATE_REQUEST_TYPE) return [];
      let request;
      try {
        request = decodeUpdateRequest(payload);
      } catch (error) {
        if (!(error instanceof UpdateMessageError)) throw error;
        stats.refused++;
        return [];
      }
      if (!allowed(hex)) return [];
      const offer = options.offerFor(hex);
      if (offer === undefined) {
        stats.unanswerable++;
        return [];
      }
      const tag = tagOf(offer);
      if (request.kind === 'manifest') {
        if (request.tag !== 0 && request.tag !== tag) {
          stats.unanswerable++;
          return [];
        }
        return manifestTo(hex, offer);
      }
      if (request.tag !== tag || request.offset + request.length > offer.image.length) {
        stats.unanswerable++;
        return [];
      }
      const chunk = encodeChunkMessage(tag, request.offset, offer.image.subarray(request.offset, request.offset + request.length));
      stats.chunksSent++;
      stats.bytesSent += chunk.length;
      return [{ topic: updateTopic(hex), payload: chunk }];
    },
  };
}

/** The part of an MQTT client the responder uses (mqtt.js's MqttClient fits). */
export interface MqttLikeClient {
  subscribe(topic: string, options: { qos: 0 | 1 }): unknown;
  unsubscribe(topic: string): unknown;
  publish(topic: string, payload: Uint8Array, options: { qos: 0 | 1 }): unknown;
  on(event: 'message', listener: (topic: string, payload: Uint8Array) => void): unknown;
  off(event: 'message', listener: (topic: string, payload: Uint8Array) => void): unknown;
}

/** Subscribe `client` to every device's telemetry and publish the responder's answers (QoS 1). Returns a detach function. */
export function attachUpdateResponder(client: MqttLikeClient, responder: UpdateResponder, root = 'holdfast'): () => void {
  const filter = `${root}/+/telemetry`;
  const listener = (topic: string, payload: Uint8Array): void => {
    for (const out of responder.onTelemetry(topic, payload)) client.publish(out.topic, out.payload, { qos: 1 });
  };
  client.on('message', listener);
  client.subscribe(filter, { qos: 1 });
  return () => {
    client.off('message', listener);
    client.unsubscribe(filter);
  };
}
