/**
 * `holdfast sim --devices 1 --engine node --console-pty PATH` (issue #18):
 * the simulated device's serial console on one end of a real pty pair
 * (socat), `holdfast console --port` on the other: the console answers from
 * the running runtime (its device id, its slots, its audit tail), while the
 * fleet runs; garbage and a frame cut mid-line are skipped and counted; an
 * unauthenticated reboot is refused and audited. Bad uses of the flag are one-line errors, exit 2. socat
 * missing: skipped locally, failed under CI (tools/net/common.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { requireComponents, skipUnless } from '../../tools/net/common.ts';
import { fleetDeviceId } from '../../tools/sim/fleet/fleet-device.ts';
import { findSocat, openPtyPair } from '../flash/pty-pair.ts';
import { assertOneLineError, batch, expectExit, holdfast, start } from '../cli/cli-harness.ts';

const socat = findSocat();

describe('holdfast sim --console-pty', () => {
  it("the device's console answers on the pty while the fleet runs", { skip: skipUnless([socat]) }, async () => {
    requireComponents([socat]);
    const pair = await openPtyPair(socat.ok ? socat.path : 'socat');
    const sim = start(['sim', '--engine', 'node', '--devices', '1', '--duration', '3000', '--seed', '4', '--power-cuts', '0', '--no-update', '--console-pty', pair.paths[1]], { timeout: 300_000 });
    try {
      const hex = Buffer.from(fleetDeviceId(0, 4, 0)).toString('hex');
      // The device boots once the broker and the ingest are up: ask until it answers.
      let status;
      for (let i = 0; i < 30; i++) {
        status = await holdfast(['console', '--port', pair.paths[0], '--command', 'status', '--timeout-ms', '1000']);
        if (status.status === 0) break;
      }
      assert.ok(status, 'asked');
      expectExit(status, 0, `console status: ${status.stderr}`);
      assert.match(status.stdout, new RegExp(`device=${hex}`));
      assert.match(status.stdout, /link=/);
      const slots = await holdfast(['console', '--port', pair.paths[0], '--command', 'slots']);
      expectExit(slots, 0, 'console slots');
      assert.match(slots.stdout, /slot=0 .*version=1/);
      // (No power cuts and no update in this run: the device stays in one boot, so its console's counters add up.)
      // Garbage on the line, then a frame cut in the middle (the host side closes the port mid-line): skipped and
      // counted by the device, and the next command is answered.
      const fd = openSync(pair.paths[0], 'w');
      writeSync(fd, Buffer.concat([Buffer.from([0x00, 0xff, 0x1b, 0x5b]), Buffer.from('noise without a frame\n'), Buffer.from('HF1 cmd op=sta')]));
      closeSync(fd);
      const after = await holdfast(['console', '--port', pair.paths[0], '--command', 'status']);
      expectExit(after, 0, `console status after garbage and a cut line: ${after.stderr}`);
      const skipped = Number(/rx-skipped=(\d+)/.exec(after.stdout)?.[1] ?? '0') + Number(/rx-bad=(\d+)/.exec(after.stdout)?.[1] ?? '0');
      assert.ok(skipped >= 1, `garbage and the cut frame counted: ${after.stdout}`);
      // A state-changing command while the console is locked: refused (exit 1), the device does not restart, and the refusal is audited.
      const reboot = await holdfast(['console', '--port', pair.paths[0], '--command', 'reboot']);
      expectExit(reboot, 1, `an unauthenticated reboot: ${reboot.stdout}`);
      assert.match(reboot.stdout, /reboot refused \(locked\)/);
      const tail = await holdfast(['console', '--port', pair.paths[0], '--command', 'audit tail']);
      expectExit(tail, 0, `audit tail: ${tail.stderr}`);
      assert.match(tail.stdout, /kind=console-refused command=reboot reason=locked/, `the refusal is in the audit tail: ${tail.stdout}`);
    } finally {
      sim.child.kill('SIGINT');
      await sim.done;
      await pair.close();
    }
  });

  it('bad uses are one line and exit 2', async () => {
    const runs = await batch([
      ['sim', '--console-pty', '/dev/null', '--devices', '2', '--engine', 'node'],
      ['sim', '--console-pty', '/dev/null', '--devices', '1', '--engine', 'xs'],
      ['sim', '--console-pty', '/nonexistent/pty', '--devices', '1', '--engine', 'node'],
    ]);
    for (const [i, run] of runs.entries()) {
      expectExit(run, 2, `case ${i}`);
      assertOneLineError(run, 'sim', `case ${i}`);
    }
  });
});
