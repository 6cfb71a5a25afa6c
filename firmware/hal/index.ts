/**
 * The hardware abstraction layer: interfaces only. Everything above depends
 * on these and nothing else of the platform; `firmware/targets/*` and the
 * host simulator implement them (docs/PORTING.md lists every contract).
 */
export type { FlashPartition, FlashStatus } from './flash.ts';
export type { MonotonicClock } from './clock.ts';
export { TICK_MODULUS } from './clock.ts';
export type { Entropy } from './entropy.ts';
export type { Watchdog } from './watchdog.ts';
export type { System, ResetReason } from './system.ts';
export type { BootControl, OtaState, SlotIndex } from './boot-control.ts';
export type { ByteStream, ByteStreamCallbacks, StreamConnector } from './stream.ts';
export type { Crypto, Sha256 } from './crypto.ts';
export type { Log, LogLevel } from './log.ts';
export type { Actuator, ActuatorEffect } from './actuator.ts';
