/**
 * Each device's own link (its cellular or Wi-Fi hop): a loopback port per
 * device that forwards to the hostile gateway, and that the scheduler can
 * take down (every connection dropped without a word, new ones closed as
 * soon as they open) and bring back. The gateway's faults are per packet;
 * these are per device and last simulated seconds.
 *
 * Host tool (Node).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { LOOPBACK } from '../../net/common.ts';

class DeviceLink {
  port = 0;
  up = true;
  readonly sockets = new Set<Socket>();
  /** Connections refused while the link was down. */
  refused = 0;
  constructor(readonly server: Server) {}
}

export class LinkSwitch {
  private readonly links: DeviceLink[] = [];

  private constructor(private readonly upstream: { host: string; port: number }) {}

  static async open(devices: number, upstream: { host: string; port: number }): Promise<LinkSwitch> {
    const links = new LinkSwitch(upstream);
    try {
      for (let i = 0; i < devices; i++) links.links.push(await links.listen());
    } catch (error) {
      await links.close();
      throw error;
    }
    return links;
  }

  /** The port device `index` connects to. */
  port(index: number): number {
    return this.links[index].port;
  }

  isUp(index: number): boolean {
    return this.links[index].up;
  }

  /** Lose the link: drop every connection through it and refuse new ones until `up`. */
  down(index: number): void {
    const link = this.links[index];
    link.up = false;
    for (const socket of link.sockets) socket.destroy();
    link.sockets.clear();
  }

  up(index: number): void {
    this.links[index].up = true;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.links.map((link) => {
        for (const socket of link.sockets) socket.destroy();
        return new Promise<void>((resolve) => link.server.close(() => resolve()));
      }),
    );
  }

  private async listen(): Promise<DeviceLink> {
    let link: DeviceLink | undefined;
    const server = createServer((device) => {
      const current = link!;
      device.on('error', () => undefined);
      if (!current.up) {
        current.refused++;
        device.destroy();
        return;
      }
      const upstream = connect({ host: this.upstream.host, port: this.upstream.port });
      upstream.on('error', () => device.destroy());
      device.on('error', () => upstream.destroy());
      device.setNoDelay(true);
      upstream.setNoDelay(true);
      current.sockets.add(device);
      current.sockets.add(upstream);
      const drop = (): void => {
        device.destroy();
        upstream.destroy();
        current.sockets.delete(device);
        current.sockets.delete(upstream);
      };
      device.on('close', drop);
      upstream.on('close', drop);
      device.pipe(upstream);
      upstream.pipe(device);
    });
    link = new DeviceLink(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address();
    link.port = typeof address === 'object' && address ? address.port : 0;
    return link;
  }
}
