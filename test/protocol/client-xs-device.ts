/**
 * Inside XS: a device that drains its outbox to a real broker. The outbox
 * lives on a SimFlash the host holds (RemoteFlash), the sockets are the
 * host's (RemoteStreamConnector, tools/xs/guest/remote-stream.ts), entropy
 * is the host's CSPRNG, time is the host's ticks. The firmware MqttClient
 * and Outbox run here, in the real XS engine. Host commands are JSON:
 * `{init}` starts the client, `{status}` returns counters and the events
 * since the last status, `{stop}` stops it.
 */
import { MqttClient, type ClientEvent, type MqttClientOptions } from '../../firmware/protocol/mqtt-client/index.ts';
import { OutboxSource, type SessionOptions } from '../../firmware/protocol/mqtt-session/index.ts';
import { Outbox } from '../../firmware/storage/outbox.ts';
import { RemoteFlash } from '../../tools/xs/guest/remote-flash.ts';
import { BridgeClock, handleBridgeCommand, hostEntropy, RemoteStreamConnector, type BridgeApp } from '../../tools/xs/guest/remote-stream.ts';
import { fromUtf8, utf8 } from '../../tools/xs/wire.ts';

export interface DeviceInit {
  readonly now: number;
  readonly flashHandle: number;
  readonly host: string;
  readonly port: number;
  readonly session: Omit<SessionOptions, 'password' | 'startSeq'> & { password?: string };
  readonly client?: Partial<Pick<MqttClientOptions, 'backoff' | 'writeQueueBytes' | 'readBufferBytes' | 'fallbackTo311'>>;
}

export interface DeviceStatus {
  queued: number;
  ackSeq: number;
  phase: string;
  stats: ReturnType<MqttClient['stats']>;
  events: ClientEvent[];
  openStreams: number;
}

interface Request {
  init?: DeviceInit;
  status?: boolean;
  stop?: boolean;
}

function serve(): void {
  const clock = new BridgeClock();
  const connector = new RemoteStreamConnector();
  let client: MqttClient | undefined;
  let outbox: Outbox | undefined;
  let events: ClientEvent[] = [];
  const app: BridgeApp = {
    service: (now) => client?.service(now),
    nextDueMs: (now) => client?.nextDueMs(now),
    command(request) {
      const message = JSON.parse(fromUtf8(request)) as Request;
      if (message.init) {
        const init = message.init;
        clock.now = init.now;
        outbox = Outbox.open(RemoteFlash.attach(init.flashHandle));
        const { password, ...rest } = init.session;
        const session: SessionOptions = { ...rest, startSeq: outbox.stats().ackSeq, ...(password === undefined ? {} : { password: utf8(password) }) };
        client = new MqttClient(
          { host: init.host, port: init.port, session, ...init.client },
          { connector, clock, entropy: hostEntropy, source: new OutboxSource(outbox), onEvent: (e) => events.push(e.kind === 'message' ? { ...e, payload: new Uint8Array(0) } : e) },
        );
        client.start(clock.now);
        return utf8('{}');
      }
      if (message.stop) client?.stop();
      if (client === undefined || outbox === undefined) throw new Error('not initialised');
      const stats = outbox.stats();
      const status: DeviceStatus = { queued: stats.queued, ackSeq: stats.ackSeq, phase: client.phase, stats: client.stats(), events, openStreams: connector.openCount };
      events = [];
      return utf8(JSON.stringify(status));
    },
  };
  (globalThis as { handleCommand?: (request: ArrayBuffer) => ArrayBuffer }).handleCommand = (request) => {
    const reply = handleBridgeCommand(new Uint8Array(request), connector, clock, app);
    return reply.buffer.slice(reply.byteOffset, reply.byteOffset + reply.byteLength) as ArrayBuffer;
  };
}

serve();
