/**
 * How `holdfast console` shows events (tools/console/render.ts) and reads
 * typed commands (tools/console/commands.ts): colour only on a terminal
 * and never with NO_COLOR, device text never reaches the terminal raw
 * (control characters escaped), replies and refusals in one line each,
 * and every typed form of a command mapped to the wire's op and fields.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatEvent, formatReply, styleFor } from '../../tools/console/render.ts';
import { parseCommand } from '../../tools/console/commands.ts';

const plain = { colour: false };
const colour = { colour: true };

describe('console rendering', () => {
  it('colour only on a terminal, not with NO_COLOR or TERM=dumb', () => {
    assert.deepEqual(styleFor({ isTTY: true }, { TERM: 'xterm' }), colour);
    assert.deepEqual(styleFor({ isTTY: false }, { TERM: 'xterm' }), plain);
    assert.deepEqual(styleFor({ isTTY: true }, { TERM: 'xterm', NO_COLOR: '1' }), plain);
    assert.deepEqual(styleFor({ isTTY: true }, { TERM: 'dumb' }), plain);
  });

  it('log lines: level, area, message, fields; colour by level; control characters escaped', () => {
    const event = { event: 'log', level: 'error', area: 'ota', msg: 'bad\x1b[2Jimage\nnext', fields: { slot: '1', note: 'two words' } } as const;
    assert.equal(formatEvent(event, plain), '[error] ota: bad\\u001b[2Jimage\\nnext slot=1 note="two words"');
    assert.equal(formatEvent(event, colour), '\x1b[31m[error]\x1b[0m \x1b[1mota\x1b[0m: bad\\u001b[2Jimage\\nnext \x1b[2mslot=1 note="two words"\x1b[0m');
    assert.equal(formatEvent({ event: 'hello', fields: { proto: '1', device: 'd-1', locked: 'true' } }, plain), 'device d-1: holdfast console protocol 1 (locked)');
    assert.equal(formatEvent({ event: 'noise', bytes: 5, total: 12 }, plain), '(skipped 5 bytes outside frames; 12 so far)');
    assert.equal(formatEvent({ event: 'item', id: '1', op: 'slots', fields: {} }, plain), undefined);
  });

  it('replies: ok with fields and items, refusals with code and message', () => {
    assert.equal(formatReply({ ok: true, op: 'slots', code: undefined, msg: undefined, fields: { count: '2' }, items: [{ slot: '0' }, { slot: '1' }] }, plain), 'slots ok: count=2\n  slot=0\n  slot=1');
    assert.equal(formatReply({ ok: false, op: 'reboot', code: 'locked', msg: 'needs unlock', fields: { audited: 'true' }, items: [] }, plain), 'reboot refused (locked): needs unlock [audited]');
  });

  it('typed commands map to ops and fields; anything else is a one-line reason', () => {
    assert.deepEqual(parseCommand('status'), { op: 'status', fields: {} });
    assert.deepEqual(parseCommand('  audit   tail  7 '), { op: 'audit-tail', fields: { n: '7' } });
    assert.deepEqual(parseCommand('audit tail'), { op: 'audit-tail', fields: {} });
    assert.deepEqual(parseCommand('audit-tail 3'), { op: 'audit-tail', fields: { n: '3' } });
    assert.deepEqual(parseCommand('safe-mode off'), { op: 'safe-mode', fields: { mode: 'off' } });
    for (const bad of ['', 'audit tail 0', 'audit tail 33', 'audit head', 'safe-mode', 'safe-mode maybe', 'reboot now', 'format']) {
      const reason = parseCommand(bad);
      assert.equal(typeof reason, 'string', bad);
      assert.ok(!String(reason).includes('\n'), `${bad}: one line`);
    }
  });
});
