export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured log line; on the device it goes to the serial console. */
export interface Log {
  write(level: LogLevel, area: string, message: string, fields?: Readonly<Record<string, string | number | boolean>>): void;
}
