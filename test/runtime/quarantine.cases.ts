/**
 * Quarantine (docs/spec/safe-mode.md rows 20-27, docs/spec/commands.md
 * 0x32/0x33), in Node and XS: a signed `quarantine` puts the device in safe
 * mode with cause `quarantine` (from normal mode, or from safe mode with
 * another cause), persisted and audited; a signed `leave-safe-mode` and the
 * unlocked console's `safe-mode off` are refused while quarantined; only a
 * signed `leave-quarantine` leaves; forged ones change nothing.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { SafeModeStore, SAFE_MODE_CAUSE_CODES } from '../../firmware/runtime/safe-mode.ts';
import { equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, partsOf, provision, type Device, type Fleet } from './runtime-world.ts';
import { attachConsole } from './console-world.ts';

const AFTER_BOOT_MS = 61_000;

function fresh(env: CaseEnv, fleet: Fleet): FlashPartition {
  const flash = env.createFlash(flashOptions('plain'));
  provision(flash, fleet);
  return flash;
}

function boot(flash: FlashPartition, fleet: Fleet): Device {
  const d = bootDevice(flash, fleet);
  d.clock.advance(AFTER_BOOT_MS);
  return d;
}

function stored(flash: FlashPartition): string {
  const s = SafeModeStore.open(partsOf(flash).safeMode as FlashPartition).status();
  return `${s.active}:${s.cause}:${s.transitions}`;
}

function mode(d: Device): string {
  const s = d.runtime.status();
  return `${s.mode}:${s.safeMode.cause}`;
}

const cases: FirmwareCase[] = [
  {
    name: 'quarantine rows 20, 22, 24, 26, 27: normal → quarantine by a signed quarantine (one record, audited); again: nothing; a signed leave-safe-mode is refused; after a reboot still quarantined; a signed leave-quarantine leaves (one record, audited)',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      let d = boot(flash, fleet);
      equal(d.runtime.handleCommand(fleet.command(100, 'quarantine')).mode, 'entered', 'row 20: entered');
      equal(mode(d), 'safe:quarantine', 'safe, cause quarantine');
      equal(stored(flash), 'true:quarantine:1', 'persisted, one record');
      equal(d.runtime.healthRecord().safeModeCause, SAFE_MODE_CAUSE_CODES.quarantine, 'the health record names it (0x08)');
      equal(d.runtime.handleCommand(fleet.command(101, 'quarantine')).mode, 'unchanged', 'row 27: again, nothing');
      equal(stored(flash), 'true:quarantine:1', 'nothing written');
      const leave = d.runtime.handleCommand(fleet.command(102, 'leave-safe-mode'));
      equal(`${leave.mode}:${leave.detail ?? ''}`, 'leave-refused:quarantined: only a signed leave-quarantine leaves', 'row 22: leave-safe-mode refused');
      equal(d.runtime.handleCommand(fleet.command(103, 'set-output', { target: 1, value: 1 })).result.status, 'refused', 'physical refused');
      equal(d.runtime.handleCommand(fleet.command(104, 'report-status', { section: 0 })).result.status, 'accepted', 'diagnostics answered');
      d = boot(flash, fleet);
      equal(mode(d), 'safe:quarantine', 'row 26: quarantined after a reboot');
      equal(d.runtime.handleCommand(fleet.command(2_000, 'leave-quarantine')).mode, 'left', 'row 24: left');
      equal(`${mode(d)}|${stored(flash)}`, 'normal:command|false:command:2', 'normal, one record');
      const audit = auditSummary(flash, fleet);
      ok(audit.includes('safe-mode-entered:quarantine') && audit.includes('safe-mode-left:leave-quarantine'), `audited: ${audit.join(',')}`);
    },
  },
  {
    name: 'quarantine rows 21, 23, 25: safe (command) → quarantine replaces the cause (one record); the unlocked console\'s safe-mode off is refused while quarantined; leave-quarantine when not quarantined changes nothing; a forged quarantine changes nothing',
    run(env) {
      const fleet = makeFleet();
      const flash = fresh(env, fleet);
      const d = boot(flash, fleet);
      equal(d.runtime.handleCommand(fleet.command(100, 'leave-quarantine')).mode, 'unchanged', 'row 25: not quarantined, nothing');
      const forged = fleet.command(101, 'quarantine');
      forged[forged.length - 1] ^= 1;
      equal(`${d.runtime.handleCommand(forged).mode}:${mode(d)}`, 'unchanged:normal:none', 'forged: nothing');
      equal(d.runtime.handleCommand(fleet.command(102, 'enter-safe-mode')).mode, 'entered', 'safe (command)');
      equal(d.runtime.handleCommand(fleet.command(103, 'leave-quarantine')).mode, 'unchanged', 'safe for another cause: leave-quarantine does not leave it');
      equal(d.runtime.handleCommand(fleet.command(104, 'quarantine')).mode, 'entered', 'row 21: quarantine from safe mode');
      equal(`${mode(d)}|${stored(flash)}`, 'safe:quarantine|true:quarantine:3', 'cause replaced, one record (count 1 → 3)');
      const c = attachConsole(d.runtime, fleet, { clock: d.clock });
      equal(c.unlock().kind, 'ok', 'unlocked');
      const off = c.send('safe-mode', { mode: 'off' }).reply;
      equal(`${off.kind}:${off.fields.code}`, 'err:leave-refused', 'row 23: console off refused');
      equal(mode(d), 'safe:quarantine', 'still quarantined');
    },
  },
];

export const suite: CaseSuite = { name: 'runtime quarantine', cases };
