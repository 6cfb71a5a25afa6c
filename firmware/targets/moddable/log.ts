/**
 * `Log` for the device: one text line per entry, `level area: message
 * {fields}`, handed to a line sink (Moddable's `trace` by default in
 * device.ts: xsbug or the serial console). The console protocol's framed
 * log lines replace this sink when the console runs (firmware/protocol/console/).
 */
import type { Log, LogLevel } from '../../hal/log.ts';

export function createLineLog(writeLine: (line: string) => void): Log {
  return Object.freeze<Log>({
    write(level: LogLevel, area: string, message: string, fields?: Readonly<Record<string, string | number | boolean>>): void {
      writeLine(`${level} ${area}: ${message}${fields === undefined ? '' : ` ${JSON.stringify(fields)}`}\n`);
    },
  });
}
