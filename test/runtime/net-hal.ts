/**
 * The HAL of a runtime device on a real network in a Node test (the real
 * monotonic clock, Node's entropy, sockets through `connector`): shared by
 * the runtime-over-mosquitto test and the key rotation drill. Node only.
 */
import type { MonotonicClock } from '../../firmware/hal/clock.ts';
import type { Crypto } from '../../firmware/hal/crypto.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import type { StreamConnector } from '../../firmware/hal/stream.ts';
import type { RuntimeHal } from '../../firmware/runtime/main.ts';
import { nodeEntropy } from '../../tools/net/node-stream.ts';
import { VirtualClock } from '../../tools/sim/clock.ts';
import { DeviceReset, SimWatchdog } from '../../tools/sim/watchdog.ts';
import { RecordingActuator } from './runtime-world.ts';

/** The real monotonic clock, plus a jump the test makes (the command rate limiter starts spent at boot). */
export class JumpClock implements MonotonicClock {
  jump = 0;
  ticks(): number {
    return (Math.floor(performance.now()) + this.jump) >>> 0;
  }
}

/** A restart throws DeviceReset (the test catches it); the watchdog never fires (a virtual clock nobody advances). */
export function networkHal(parts: { clock: MonotonicClock; crypto: Crypto; connector: StreamConnector; partitions: ReadonlyMap<string, FlashPartition>; actuator?: RecordingActuator }): RuntimeHal {
  return {
    system: { lastResetReason: () => 'power-on', restart: (why: string): never => { throw new DeviceReset('software', why); } },
    log: { write: () => undefined },
    clock: parts.clock,
    entropy: nodeEntropy,
    watchdog: new SimWatchdog(new VirtualClock()),
    crypto: parts.crypto,
    connector: parts.connector,
    actuator: parts.actuator ?? new RecordingActuator(),
    partition: (label) => parts.partitions.get(label),
  };
}
