/**
 * Console events as text lines: coloured by level on a terminal (ANSI SGR,
 * unless NO_COLOR is set), plain otherwise; and as one-line JSON objects.
 *
 * Host tool (Node).
 */
import type { ConsoleEvent, ConsoleReply } from './client.ts';

export interface Style {
  readonly colour: boolean;
}

const SGR = { reset: '\x1b[0m', dim: '\x1b[2m', red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', cyan: '\x1b[36m', bold: '\x1b[1m' } as const;

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return { colour: stream.isTTY === true && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb' };
}

function paint(style: Style, code: keyof typeof SGR, text: string): string {
  return style.colour ? `${SGR[code]}${text}${SGR.reset}` : text;
}

/** `key=value …`; values with spaces quoted as JSON strings; control characters never reach the terminal raw. */
export function formatFields(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${/^[\x21-\x7e]*$/.test(v) && v !== '' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** Strip terminal control characters from device text (a device must not drive the terminal). */
function safe(text: string): string {
  return JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"');
}

const LEVEL_COLOUR: Record<string, keyof typeof SGR> = { debug: 'dim', info: 'cyan', warn: 'yellow', error: 'red' };

/** One line for an event, or undefined for events shown only in JSON (items and replies of requests are shown by `formatReply`). */
export function formatEvent(event: ConsoleEvent, style: Style): string | undefined {
  switch (event.event) {
    case 'hello':
      return paint(style, 'bold', `device ${safe(event.fields.device ?? '?')}: holdfast console protocol ${safe(event.fields.proto ?? '?')}${event.fields.locked === 'true' ? ' (locked)' : event.fields.locked === 'false' ? ' (unlocked)' : ''}`);
    case 'log': {
      const rest = formatFields(event.fields);
      return `${paint(style, LEVEL_COLOUR[event.level] ?? 'reset', `[${safe(event.level)}]`)} ${paint(style, 'bold', safe(event.area))}: ${safe(event.msg)}${rest ? ` ${paint(style, 'dim', rest)}` : ''}`;
    }
    case 'noise':
      return paint(style, 'dim', `(skipped ${event.bytes} bytes outside frames; ${event.total} so far)`);
    case 'dropped':
      return paint(style, 'dim', `(dropped a frame: ${event.reason})`);
    case 'frame':
      return paint(style, 'dim', `(frame ${event.kind}: ${formatFields(event.fields)})`);
    default:
      return undefined;
  }
}

/** The reply to a command: a line with its fields, then one line per item. */
export function formatReply(reply: ConsoleReply, style: Style): string {
  if (!reply.ok) return `${paint(style, 'red', `${reply.op} refused (${safe(reply.code ?? 'unknown')})`)}${reply.msg ? `: ${safe(reply.msg)}` : ''}${reply.fields.audited === 'true' ? ' [audited]' : ''}`;
  const head = `${paint(style, 'green', `${reply.op} ok`)}${Object.keys(reply.fields).length > 0 ? `: ${formatFields(reply.fields)}` : ''}`;
  return [head, ...reply.items.map((item) => `  ${formatFields(item)}`)].join('\n');
}

/** One JSON line for an event. */
export function jsonEvent(event: ConsoleEvent): string {
  return JSON.stringify(event);
}
