/**
 * The XS stream bridge (tools/xs/stream-bridge.ts, guest side
 * tools/xs/guest/remote-stream.ts; docs/design/mqtt-client.md): a guest in
 * the real XS engine opens a Node-owned TCP socket to a local echo server,
 * is told it is writable, writes, gets the echo back as readable bytes,
 * closes (the server sees the end), and is ticked at the time it asked for.
 * A refused connection and a peer that hangs up arrive as onError; entropy
 * comes from the host.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from '../../tools/net/common.ts';
import { XsStreamBridge } from '../../tools/xs/stream-bridge.ts';

const GUEST = fileURLToPath(new URL('./fixtures/stream-bridge-guest.ts', import.meta.url));

interface GuestState {
  received: string;
  events: string[];
  open: number;
  now: number;
  ticks: number;
}

async function until<T>(what: string, probe: () => T, ok: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (ok(value)) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await sleep(5);
  }
}

describe('XS stream bridge', () => {
  let server: Server;
  let port = 0;
  const peers: Socket[] = [];
  let ended = 0;
  let bridge: XsStreamBridge | undefined;

  before(async () => {
    server = createServer((socket) => {
      peers.push(socket);
      socket.on('data', (data) => socket.write(data));
      socket.on('end', () => {
        ended++;
        socket.end();
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });
  afterEach(() => {
    bridge?.close();
    bridge = undefined;
  });
  after(async () => {
    for (const p of peers) p.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const state = (b: XsStreamBridge): GuestState => b.callJson({ state: true }) as GuestState;

  it('connect, writable, write, echo read back, close; ticks at the due time', async () => {
    bridge = await XsStreamBridge.open(GUEST, { pollMs: 20 });
    const b = bridge;
    b.callJson({ connect: { host: '127.0.0.1', port } });
    await until('writable', () => state(b), (s) => s.events.includes('writable room'));
    const { room } = b.callJson({ write: 'hello from XS' }) as { room: number };
    assert.ok(room > 0, 'room left after a small write');
    const s = await until('echo', () => state(b), (v) => v.received === 'hello from XS');
    assert.ok(s.events.some((e) => e.startsWith('readable ')), 'bytes arrived as onReadable');
    assert.equal(s.open, 1);
    assert.ok(s.now > 0, "the guest's clock shows the host's ticks");
    await until('ticks', () => state(b), (v) => v.ticks >= 3);
    const closed = b.callJson({ close: true }) as { open: number };
    assert.equal(closed.open, 0, 'stream released in the guest');
    await until('the server sees the end', () => ended, (n) => n >= 1);
    assert.equal(b.streams.counts.connects, 1);
    assert.equal(b.streams.counts.closes, 1);
    assert.equal(b.failure, undefined);
  });

  it('a refused connection arrives as onError; a peer hanging up too', async () => {
    bridge = await XsStreamBridge.open(GUEST, { pollMs: 20 });
    const b = bridge;
    const closedPort = await freePort();
    b.callJson({ connect: { host: '127.0.0.1', port: closedPort } });
    const refused = await until('refusal', () => state(b), (v) => v.events.some((e) => e.startsWith('error ')));
    assert.match(refused.events.join('|'), /error ECONNREFUSED/);
    assert.equal(refused.open, 0, 'a failed stream is released');

    const before = peers.length;
    b.callJson({ connect: { host: '127.0.0.1', port } });
    await until('writable', () => state(b), (v) => v.events.includes('writable room'));
    await until('server side', () => peers.length, (n) => n > before);
    peers[peers.length - 1].destroy();
    const hung = await until('hang-up', () => state(b), (v) => v.events.filter((e) => e.startsWith('error ')).length >= 2);
    assert.equal(hung.open, 0);
  });

  it("entropy comes from the host's CSPRNG", async () => {
    bridge = await XsStreamBridge.open(GUEST);
    const a = (bridge.callJson({ entropy: 32 }) as { bytes: number[] }).bytes;
    const c = (bridge.callJson({ entropy: 32 }) as { bytes: number[] }).bytes;
    assert.equal(a.length, 32);
    assert.notDeepEqual(a, c, 'two draws differ');
    assert.ok(new Set(a).size > 8, 'not a constant');
  });
});
