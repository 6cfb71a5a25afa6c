/**
 * The zero-install embedded broker: aedes (npm, MQTT 3.1.1 only; it refuses
 * MQTT 5 CONNECTs with "unacceptable protocol version") on a free loopback
 * port through net.createServer, with the same start/stop/restart interface as
 * tools/net/mosquitto.ts and the same least authority: each device
 * authenticates with its own password and may publish only under
 * holdfast/<deviceId>/ (services as configured).
 *
 * A refused publish in 3.1.1 has no reason code to carry: aedes closes the
 * client's connection (docs/design/test-network.md). With `persistence`, the
 * in-memory aedes-persistence store is kept across restart() (sessions and
 * queued QoS 1 messages survive, as mosquitto's persistence file makes them);
 * without it each start has a fresh store.
 *
 * Host tool (Node).
 */
import { Aedes } from 'aedes';
import { createServer, type Server, type Socket } from 'node:net';
// aedes-persistence is aedes's own dependency (its default store); no types shipped.
// @ts-ignore
import memoryPersistence from 'aedes-persistence';
import {
  checkDeviceId, freePort, LOOPBACK, topicBelongsTo, topicMatches, TOPIC_ROOT,
  type BrokerHandle, type DeviceCredential, type ServiceAccount,
} from './common.ts';

export interface AedesOptions {
  devices: readonly DeviceCredential[];
  services?: readonly ServiceAccount[];
  persistence?: boolean;
  openAcl?: boolean;
  /** Fleet-wide topics every device may also read (the retained revocation list). */
  deviceRead?: readonly string[];
  port?: number;
}

export interface AedesBroker extends BrokerHandle {
  readonly kind: 'aedes';
  /** One line per refusal (authentication, publish, subscribe), for tests and logs. */
  readonly refusals: readonly string[];
  readonly aedes: Aedes | undefined;
}

export async function startAedes(options: AedesOptions): Promise<AedesBroker> {
  for (const d of options.devices) checkDeviceId(d.deviceId);
  for (const s of options.services ?? []) checkDeviceId(s.username);
  const broker = new EmbeddedBroker(options);
  await broker.start(options.port ?? (await freePort()));
  return broker;
}

class EmbeddedBroker implements AedesBroker {
  readonly kind = 'aedes' as const;
  readonly host = LOOPBACK;
  readonly protocolVersions = [4, 3] as const;
  port = 0;
  readonly refusals: string[] = [];
  aedes: Aedes | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private persistence: unknown;
  private stopped = false;

  constructor(private readonly options: AedesOptions) {}

  get running(): boolean {
    return this.server?.listening === true;
  }

  private passwordOf(username: string): string | undefined {
    return this.options.devices.find((d) => d.deviceId === username)?.password ?? this.options.services?.find((s) => s.username === username)?.password;
  }

  private mayPublish(username: string | undefined, topic: string): boolean {
    if (username === undefined) return false;
    if (this.options.devices.some((d) => d.deviceId === username)) {
      return topicBelongsTo(topic, username) || (this.options.openAcl === true && topicMatches(`${TOPIC_ROOT}/#`, topic));
    }
    const service = this.options.services?.find((s) => s.username === username);
    return (service?.write ?? []).some((f) => topicMatches(f, topic));
  }

  private maySubscribe(username: string | undefined, filter: string): boolean {
    if (username === undefined) return false;
    if (this.options.devices.some((d) => d.deviceId === username)) return topicBelongsTo(filter, username) || filter === `${TOPIC_ROOT}/${username}/#` || (this.options.deviceRead ?? []).includes(filter);
    const service = this.options.services?.find((s) => s.username === username);
    // A subscription is allowed when one of the read filters covers it (same or wider).
    return (service?.read ?? [`${TOPIC_ROOT}/#`]).some((f) => f === filter || (f.endsWith('/#') && (filter === f.slice(0, -2) || filter.startsWith(f.slice(0, -1)))));
  }

  async start(port: number): Promise<void> {
    if (!this.persistence || !this.options.persistence) this.persistence = memoryPersistence();
    const usernames = new WeakMap<object, string>();
    const aedes = await Aedes.createBroker({
      persistence: this.persistence,
      authenticate: (client, username, password, done) => {
        const expected = username === undefined ? undefined : this.passwordOf(username);
        if (expected === undefined || password === undefined || password.toString() !== expected) {
          this.refusals.push(`authenticate ${client?.id}: bad username or password (${username})`);
          const error = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
          return done(error, false);
        }
        usernames.set(client, username as string);
        done(null, true);
      },
      authorizePublish: (client, packet, done) => {
        const username = client ? usernames.get(client) : undefined;
        if (client && !this.mayPublish(username, packet.topic)) {
          this.refusals.push(`publish ${client.id} (${username}) to ${packet.topic}: not authorized`);
          return done(new Error(`not authorized to publish to ${packet.topic}`));
        }
        done(null);
      },
      authorizeSubscribe: (client, subscription, done) => {
        const username = usernames.get(client);
        if (!this.maySubscribe(username, subscription.topic)) {
          this.refusals.push(`subscribe ${client.id} (${username}) to ${subscription.topic}: not authorized`);
          // null subscription: SUBACK 0x80 for this filter, connection kept.
          return done(null, null);
        }
        done(null, subscription);
      },
    });
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      aedes.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.aedes = aedes;
    this.server = server;
    this.port = port;
  }

  private async halt(): Promise<void> {
    const server = this.server;
    const aedes = this.aedes;
    this.server = undefined;
    this.aedes = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('aedes was stopped; start a new one');
    await this.halt();
    await this.start(this.port);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.halt();
  }
}
