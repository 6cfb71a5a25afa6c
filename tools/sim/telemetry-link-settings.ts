/**
 * The telemetry link settings of a simulated device (engine-neutral): the
 * Node-engine device (telemetry-device.ts) and the XS guest of the
 * end-to-end suite use this one configuration, so both engines run the same
 * firmware settings.
 */
import type { TelemetryLinkOptions } from '../../firmware/protocol/telemetry/index.ts';

/** Who a simulated device is and where its broker is (JSON-safe: it crosses into XS as is). */
export interface SimulatedDeviceLink {
  /** 16 hex digits. */
  readonly deviceIdHex: string;
  readonly secretHex: string;
  readonly keyId: number;
  readonly host: string;
  readonly port: number;
  readonly protocolVersion: 4 | 5;
  readonly password: string;
}

export interface SimulatedLinkSettings {
  /** The device id as 16 hex digits: MQTT client id and user name. */
  readonly deviceHex: string;
  readonly protocolVersion: 4 | 5;
  readonly password?: Uint8Array;
  readonly keepAliveSec?: number;
  readonly maxInFlight?: number;
  /** Default 2000 ms: above the ingest's batch latency. */
  readonly receiptTimeoutMs?: number;
}

export function simulatedLinkSettings(o: SimulatedLinkSettings): Pick<TelemetryLinkOptions, 'session' | 'client' | 'receiptTimeoutMs'> {
  return {
    session: {
      protocolVersion: o.protocolVersion,
      clientId: o.deviceHex,
      keepAliveSec: o.keepAliveSec ?? 30,
      sessionExpirySec: 3600,
      maximumPacketSize: 4096,
      maxInFlight: o.maxInFlight ?? 8,
      responseTimeoutMs: 3000,
      username: o.deviceHex,
      ...(o.password !== undefined ? { password: o.password } : {}),
    },
    client: { backoff: { baseMs: 20, capMs: 500 } },
    receiptTimeoutMs: o.receiptTimeoutMs ?? 2000,
  };
}
