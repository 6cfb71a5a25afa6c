/** `holdfast-native` by name: the glue's functions, on the installed emulation. */
import type { ModdableBuffer } from '../../../../firmware/targets/moddable/modules.ts';
import { installed } from '../installed.ts';

const native = () => installed().native;
export const resetReason = (): string => native().resetReason();
export const restart = (): void => native().restart();
export const feedWatchdog = (): void => native().feedWatchdog();
export const watchdogTimeout = (): number => native().watchdogTimeout();
export const runningPartition = (): string => native().runningPartition();
export const secureVersion = (): number => native().secureVersion();
export const raiseSecureVersion = (version: number): void => native().raiseSecureVersion(version);
export const imageSecureVersion = (): number => native().imageSecureVersion();
export const expireWatchdog = (): void => native().expireWatchdog();
export const fillRandom = (buffer: ModdableBuffer): void => native().fillRandom(buffer);
export const partitionEncrypted = (name: string): boolean => native().partitionEncrypted(name);
export const readPartitionRaw = (name: string, byteOffset: number, buffer: ModdableBuffer): void => native().readPartitionRaw(name, byteOffset, buffer);
