/**
 * The serial console on the running runtime (firmware/runtime/console-target.ts;
 * docs/spec/console.md and safe-mode.md rows 13-19), in Node and XS: every
 * console command against a runtime over a simulated flash, each getter
 * against the runtime's own figures, every state change through the
 * runtime (persisted, audited, across a reboot), the refusals (locked, a
 * wrong key, no key, a standing boot cause, an unavailable audit log), and
 * power cuts at every flash operation of the console's state-changing
 * commands (confirm, safe-mode on, safe-mode off, rollback, reboot), plain
 * and strict flash.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { SafeModeStore, SAFE_MODE_CAUSE_CODES } from '../../firmware/runtime/safe-mode.ts';
import type { PartitionKey } from '../../firmware/runtime/boot.ts';
import type { Runtime } from '../../firmware/runtime/main.ts';
import { PENDING, selfTest, type HealthCheck } from '../../firmware/update/health.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import { provisionDevice, SimBootloader } from '../../tools/sim/bootloader.ts';
import { PartitionView } from '../../tools/sim/flash/partition-view.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { exhaustiveTier, runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { bootOnce, flashOptions as updateFlashOptions, makeWorld, newDeviceState, partitionsOf as updatePartitionsOf, WATCHDOG_MS, type Release, type World } from '../update/agent-world.ts';
import { BOARD } from '../update/manifest-fixtures.ts';
import { equal, ok } from '../support/check.ts';
import { TEST_DEVICE_ID } from '../support/test-device.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import type { CaseReport, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, memoCrypto, partsOf, provision, readAudit, TOTAL_BLOCKS, type Device, type Fleet } from './runtime-world.ts';
import { freshDevice, trialDevice } from './trial-world.ts';
import { attachConsole, hex, WRONG_SEED, type ConsoleHost } from './console-world.ts';

/** The rate limiter starts spent at boot: commands wait a minute (docs/spec/commands.md). */
const AFTER_BOOT_MS = 61_000;

function host(d: Device, fleet: Fleet, consoleKey?: Uint8Array | null): ConsoleHost {
  return attachConsole(d.runtime, fleet, { clock: d.clock, ...(consoleKey === undefined ? {} : { consoleKey }) });
}

function safePart(flash: FlashPartition): FlashPartition {
  return partsOf(flash).safeMode as FlashPartition;
}

/** Run `action`; it must restart the device (DeviceReset 'software'): the reset. */
function restarts(action: () => void, what: string): DeviceReset {
  try {
    action();
  } catch (error) {
    if (error instanceof DeviceReset) return error;
    throw error;
  }
  throw new Error(`${what}: the device did not restart`);
}

/** A provisioned device (`skip` left blank), booted, with its console unlocked. */
function unlockedDevice(env: Parameters<FirmwareCase['run']>[0], skip: readonly PartitionKey[] = []) {
  const fleet = makeFleet();
  const { flash } = freshDevice(env, fleet, skip);
  const d = bootDevice(flash, fleet);
  const c = host(d, fleet);
  equal(c.unlock().kind, 'ok', 'unlocked');
  return { fleet, flash, d, c };
}

function tail(flash: FlashPartition, fleet: Fleet, n: number): string {
  const all = auditSummary(flash, fleet);
  return all.slice(Math.max(0, all.length - n)).join(',');
}

function physical(runtime: Runtime, fleet: Fleet, counter: number): string {
  const r = runtime.handleCommand(fleet.command(counter, 'set-output', { target: 1, value: 1 })).result;
  return r.status === 'refused' ? `refused:${r.reason}` : r.status;
}

const cases: FirmwareCase[] = [
  {
    name: 'console reads the runtime: status, outbox, counter, slots and audit tail answer with the runtime\'s own figures; help lists every op',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet, { resetReason: 'watchdog' });
      d.runtime.append(Uint8Array.of(1, 2, 3));
      d.runtime.append(Uint8Array.of(4, 5, 6));
      d.runtime.service();
      const c = host(d, fleet);
      equal(c.frames[0].kind, 'hello', 'hello first');
      equal(c.frames[0].fields.device, hex(TEST_DEVICE_ID), 'the device id in hex');
      const s = c.send('status').reply;
      equal(s.kind, 'ok', 'status ok');
      equal(s.fields.locked, 'true', 'locked');
      equal(s.fields['safe-mode'], 'false', 'normal mode');
      equal(s.fields['safe-cause'], 'none', 'never entered');
      equal(s.fields['reset-reason'], 'watchdog', 'reset reason');
      equal(s.fields.trial, 'none', 'no trial');
      equal(s.fields.failures, '-', 'no boot failures');
      equal(s.fields.restart, '-', 'no restart pending');
      equal(s.fields['uptime-ms'], String(d.runtime.status().uptimeMs), 'uptime');
      const o = c.send('outbox').reply;
      const os = d.runtime.outboxStats();
      ok(os !== undefined, 'outbox stats');
      equal(o.fields.queued, String(os.queued), 'queued as the outbox says');
      ok(os.queued >= 2, `the readings and the health record are queued (${os.queued})`);
      equal(o.fields['next-seq'], String(os.nextSeq), 'next seq');
      const k = c.send('counter').reply;
      const ks = d.runtime.counterStats();
      ok(ks !== undefined && ks.current !== undefined, 'counter stats');
      equal(k.fields.current, String(ks.current), 'counter current');
      equal(k.fields['reserved-up-to'], String(ks.reservedUpTo), 'reserved up to');
      const slots = c.send('slots');
      equal(slots.items.length, 2, 'two slots');
      equal(slots.reply.fields.count, '2', 'count');
      equal(slots.items[0].fields.state, '-', 'no otadata partition: state unknown');
      equal(slots.items[0].fields.verifies, '-', 'no update agent: verification unknown');
      const a = c.send('audit-tail', { n: '3' });
      const mine = d.runtime.auditTail(3);
      equal(a.items.map((i) => i.fields.counter).join(','), mine.map((r) => String(r.counter)).join(','), 'audit tail: the runtime\'s newest entries, oldest first');
      equal(a.items[0].fields.kind, mine[0].event?.kind ?? '', 'kinds');
      ok(a.items.some((i) => i.fields.kind === 'watchdog-reset' && i.fields.resets === '1'), 'the watchdog reset with its fields');
      equal(c.send('help').reply.fields.ops, 'help,status,outbox,counter,slots,audit-tail,unlock,unlock-response,lock,confirm,rollback,safe-mode,reboot', 'help');
    },
  },
  {
    name: 'console: a locked state change is refused (row 17): confirm, rollback, safe-mode on/off and reboot while locked, after a wrong key, after lock, and without a key; nothing changes and every refusal is audited',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet);
      const before = d.runtime.status().safeMode.transitions;
      const c = host(d, fleet);
      const ops: [string, Record<string, string>][] = [['confirm', {}], ['rollback', {}], ['safe-mode', { mode: 'on' }], ['safe-mode', { mode: 'off' }], ['reboot', {}]];
      for (const [op, fields] of ops) {
        const r = c.send(op, fields).reply;
        equal(`${r.kind}:${r.fields.code}:${r.fields.audited}`, 'err:locked:true', `${op} refused while locked`);
      }
      const wrong = c.unlock(WRONG_SEED);
      equal(`${wrong.kind}:${wrong.fields.code}`, 'err:bad-signature', 'a response signed with another key is refused');
      equal(c.send('safe-mode', { mode: 'on' }).reply.fields.code, 'locked', 'still locked');
      equal(d.runtime.status().mode, 'normal', 'still normal');
      equal(d.runtime.status().safeMode.transitions, before, 'nothing written to the safe-mode state');
      equal(d.runtime.restartPending(), undefined, 'no restart scheduled');
      equal(tail(flash, fleet, 8), 'console-refused:locked,console-refused:locked,console-refused:locked,console-refused:locked,console-refused:locked,console-refused:bad-signature,console-refused:locked', 'every refusal audited');

      // Unlocked, then locked again: refused again.
      equal(c.unlock().kind, 'ok', 'unlocked with the fleet\'s key');
      equal(c.send('lock').reply.fields.locked, 'true', 'lock');
      equal(c.send('safe-mode', { mode: 'on' }).reply.fields.code, 'locked', 'refused after lock');
      equal(d.runtime.status().mode, 'normal', 'still normal after lock');
      const bare = host(bootDevice(flash, fleet), fleet, null);
      equal(bare.send('unlock').reply.fields.code, 'no-key', 'no console key provisioned: every unlock refused');
    },
  },
  {
    name: 'console transition normal → safe (console) (row 13), persisted and audited; physical commands refused; after a reboot safe with cause console; then safe → normal (console) (row 15), persisted; off again changes nothing (row 19)',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      let d = bootDevice(flash, fleet);
      let c = host(d, fleet);
      equal(c.unlock().kind, 'ok', 'unlocked');
      const on = c.send('safe-mode', { mode: 'on' }).reply;
      equal(`${on.kind}:${on.fields['safe-mode']}:${on.fields.changed}:${on.fields.cause}`, 'ok:true:true:console', 'entered');
      equal(d.runtime.status().mode, 'safe', 'safe');
      const stored = SafeModeStore.open(safePart(flash)).status();
      equal(`${stored.active}:${stored.cause}:${stored.code}:${stored.transitions}`, `true:console:${SAFE_MODE_CAUSE_CODES.console}:1`, 'persisted: one record, cause 0x06');
      equal(tail(flash, fleet, 2), 'console-command,safe-mode-entered:console', 'audit: the command, then the entry');
      d.clock.advance(AFTER_BOOT_MS);
      equal(physical(d.runtime, fleet, 10), 'refused:safe-mode', 'physical commands refused in safe mode');
      equal(d.runtime.healthRecord().safeModeCause, SAFE_MODE_CAUSE_CODES.console, 'the health record names the cause');

      d = bootDevice(flash, fleet);
      equal(`${d.runtime.status().mode}:${d.runtime.status().safeMode.cause}`, 'safe:console', 'safe after a reboot, cause console');
      equal(tail(flash, fleet, 1), 'safe-mode-entered:boot.console', 'recorded again at boot (row 5)');
      c = host(d, fleet);
      equal(c.send('status').reply.fields['safe-cause'], 'console', 'status says so');
      equal(c.unlock().kind, 'ok', 'unlocked again (the unlock does not survive a reboot)');
      const off = c.send('safe-mode', { mode: 'off' }).reply;
      equal(`${off.kind}:${off.fields['safe-mode']}:${off.fields.changed}`, 'ok:false:true', 'left');
      const left = SafeModeStore.open(safePart(flash)).status();
      equal(`${left.active}:${left.cause}:${left.code}:${left.transitions}`, `false:console:${SAFE_MODE_CAUSE_CODES['leave-console']}:2`, 'persisted: one record, leave cause 0x82');
      equal(tail(flash, fleet, 2), 'console-command,safe-mode-left:console', 'audit');
      const again = c.send('safe-mode', { mode: 'off' }).reply;
      equal(`${again.kind}:${again.fields.changed}`, 'ok:false', 'off while normal: nothing to do');
      equal(SafeModeStore.open(safePart(flash)).status().transitions, 2, 'nothing written');

      d = bootDevice(flash, fleet);
      equal(d.runtime.status().mode, 'normal', 'normal after a reboot');
      d.clock.advance(AFTER_BOOT_MS);
      // Above the replay store's restart floor of the boots before.
      equal(physical(d.runtime, fleet, 5_000), 'applied', 'physical commands apply again');
    },
  },
  {
    name: 'console transition safe → safe: safe-mode on again keeps the first cause and writes nothing (row 14); a signed enter then a console on: the command cause stays',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const d = bootDevice(flash, fleet);
      d.clock.advance(AFTER_BOOT_MS);
      equal(d.runtime.handleCommand(fleet.command(1, 'enter-safe-mode')).mode, 'entered', 'a signed enter');
      const c = host(d, fleet);
      c.unlock();
      const on = c.send('safe-mode', { mode: 'on' }).reply;
      equal(`${on.kind}:${on.fields.changed}:${on.fields.cause}`, 'ok:false:command', 'already safe: unchanged, the first cause kept');
      const s = SafeModeStore.open(safePart(flash)).status();
      equal(`${s.cause}:${s.transitions}`, 'command:1', 'nothing written');
      equal(tail(flash, fleet, 1), 'console-command', 'only the command is audited');
    },
  },
  {
    name: 'console transition safe → safe: off refused while a boot cause stands (row 16, no trust root); the unlocked console cannot hide a standing fault',
    run(env) {
      const { fleet, flash, d, c } = unlockedDevice(env, ['trust']);
      equal(`${d.runtime.status().mode}:${d.runtime.status().safeMode.cause}`, 'safe:policy', 'safe for the policy cause');
      const off = c.send('safe-mode', { mode: 'off' }).reply;
      equal(`${off.kind}:${off.fields.code}`, 'err:leave-refused', 'refused');
      ok(off.fields.msg.includes('trust-unavailable'), `names the cause: ${off.fields.msg}`);
      equal(d.runtime.status().mode, 'safe', 'still safe');
      equal(SafeModeStore.open(safePart(flash)).status().transitions, 1, 'nothing written');
      equal(tail(flash, fleet, 1), 'console-command', 'audit: the command only');
      equal(c.send('status').reply.fields.failures, 'trust-unavailable', 'status names the failure');
    },
  },
  {
    name: 'console transition unreadable → normal (row 18): an unreadable safe-mode partition boots safe; console off formats it',
    run(env) {
      const { fleet, flash, d, c } = unlockedDevice(env, ['safeMode']);
      equal(`${d.runtime.status().mode}:${d.runtime.status().safeMode.cause}`, 'safe:unreadable', 'safe, unreadable');
      const off = c.send('safe-mode', { mode: 'off' }).reply;
      equal(`${off.kind}:${off.fields.changed}`, 'ok:true', 'left: the partition is formatted');
      const s = SafeModeStore.open(safePart(flash)).status();
      equal(`${s.active}:${s.transitions}`, 'false:0', 'a fresh log: normal');
      equal(tail(flash, fleet, 2), 'console-command,safe-mode-left:console', 'audit');
      const again = bootDevice(flash, fleet);
      equal(again.runtime.status().mode, 'normal', 'normal after a reboot');
      equal(again.runtime.status().failures.length, 0, 'no failure');
    },
  },
  {
    name: 'console reboot: answered first (rebooting=true), then the next service restarts through the system HAL; status shows it pending',
    run(env) {
      const { fleet, flash, d, c } = unlockedDevice(env);
      const r = c.send('reboot').reply;
      equal(`${r.kind}:${r.fields.rebooting}`, 'ok:true', 'answered');
      equal(d.runtime.restartPending(), 'console reboot', 'pending');
      equal(c.send('status').reply.fields.restart, 'console reboot', 'status shows it');
      equal(d.runtime.nextDueMs(), 0, 'due now');
      const reset = restarts(() => d.runtime.service(), 'service');
      equal(reset.reason, 'software', 'a software reset');
      ok(reset.message.includes('console reboot'), reset.message);
      equal(tail(flash, fleet, 1), 'console-command', 'the command was audited before it ran');
    },
  },
  {
    name: 'console confirm: outside a trial refused (not-in-trial); in a trial whose checks pending or failed refused; when they pass the agent commits (update-committed, slot VALID) and a second confirm is refused',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const plain = host(bootDevice(flash, fleet), fleet);
      plain.unlock();
      equal(plain.send('confirm').reply.fields.code, 'not-in-trial', 'no trial');

      const waiting: HealthCheck = { name: 'broker reached', deadlineMs: 60_000, poll: () => PENDING };
      const p = trialDevice(env, [waiting]);
      const cp = host(p.d, p.fleet);
      cp.unlock();
      const pending = cp.send('confirm').reply;
      equal(pending.fields.code, 'checks-pending', 'pending checks');
      ok(pending.fields.msg.includes('broker reached'), pending.fields.msg);
      equal(p.d.runtime.status().trial, 'running', 'the trial goes on');

      const f = trialDevice(env, [selfTest(() => false)]);
      const cf = host(f.d, f.fleet);
      cf.unlock();
      equal(cf.send('confirm').reply.fields.code, 'checks-failed', 'failed checks');
      equal(f.d.runtime.status().trial, 'running', 'confirm does not roll back: the trial step does');
      equal(f.d.runtime.restartPending(), undefined, 'no restart');

      const t = trialDevice(env);
      const c = host(t.d, t.fleet);
      const before = c.send('slots');
      equal(before.items.map((i) => `${i.fields.slot}:${i.fields.running}:${i.fields.state}:${i.fields.verifies}:${i.fields.version}`).join(','), '0:false:valid:true:1,1:true:pending-verify:true:2', 'slots during the trial');
      equal(c.send('status').reply.fields.trial, 'running', 'status: trial running');
      c.unlock();
      const r = c.send('confirm').reply;
      equal(`${r.kind}:${r.fields.slot}:${r.fields.state}:${r.fields.version}`, 'ok:1:valid:2', 'confirmed');
      equal(t.d.runtime.status().trial, 'committed', 'committed');
      equal(t.d.watchdog.armed, false, 'the trial watchdog disarmed');
      equal(stateOfSlot(readOtadata(t.update.otadata), 1), 'valid', 'otadata: slot 1 VALID');
      equal(tail(t.flash, t.fleet, 2), 'console-command,update-committed', 'audit: the command, then the agent\'s commit');
      equal(c.send('confirm').reply.fields.code, 'not-in-trial', 'a second confirm: nothing to confirm');
      equal(c.send('slots').items[1].fields.state, 'valid', 'slots show it');
    },
  },
  {
    name: 'console rollback: in a trial the agent marks it INVALID (update-rolled-back console), answers, then restarts into the old slot; with no image to fall back to refused (rollback-impossible); without an update agent refused',
    run(env) {
      const t = trialDevice(env);
      const c = host(t.d, t.fleet);
      c.unlock();
      const r = c.send('rollback').reply;
      equal(`${r.kind}:${r.fields.slot}:${r.fields.state}:${r.fields.rebooting}`, 'ok:1:invalid:true', 'answered before the restart');
      equal(t.d.runtime.status().trial, 'rolled-back', 'the trial is over');
      equal(t.d.watchdog.armed, false, 'its watchdog disarmed');
      equal(tail(t.flash, t.fleet, 2), 'console-command,update-rolled-back:console', 'audit');
      equal(restarts(() => t.d.runtime.service(), 'service').reason, 'software', 'restarts at the next service');
      const next = new SimBootloader({ otadata: t.update.otadata, slots: t.update.slots, createSha256: () => t.world.crypto.createSha256(), chip: t.world.chip }).boot();
      equal(next.slot, 0, 'the bootloader boots the old slot');

      const x = trialDevice(env, undefined, true);
      const cx = host(x.d, x.fleet);
      cx.unlock();
      equal(cx.send('slots').items[0].fields.verifies, 'false', 'the old slot does not verify');
      const refused = cx.send('rollback').reply;
      equal(refused.fields.code, 'rollback-impossible', 'refused');
      equal(x.d.runtime.restartPending(), undefined, 'no restart');
      equal(x.d.runtime.status().trial, 'running', 'the trial goes on');
      equal(tail(x.flash, x.fleet, 2), 'console-command,rollback-impossible:console', 'audit');

      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet);
      const plain = host(bootDevice(flash, fleet), fleet);
      plain.unlock();
      equal(plain.send('rollback').reply.fields.code, 'no-update-agent', 'no update agent');
    },
  },
  {
    name: 'console with the audit log unavailable: unlocks and state changes are refused (audit-failed, fail closed); the audit tail answers failed; with the counter unavailable a challenge is refused (failed)',
    run(env) {
      const fleet = makeFleet();
      const { flash } = freshDevice(env, fleet, ['audit']);
      const d = bootDevice(flash, fleet);
      const c = host(d, fleet);
      const u = c.unlock();
      equal(`${u.kind}:${u.fields.code}`, 'err:audit-failed', 'the unlock cannot be audited: refused');
      equal(c.send('audit-tail').reply.fields.code, 'failed', 'audit tail: failed, not empty');
      const locked = c.send('reboot').reply;
      equal(`${locked.fields.code}:${locked.fields.audited}`, 'locked:false', 'still locked, and the refusal says it was not audited');
      equal(d.runtime.restartPending(), undefined, 'nothing scheduled');

      const g = freshDevice(env, fleet, ['counter']);
      const cg = host(bootDevice(g.flash, fleet), fleet);
      const challenge = cg.send('unlock').reply;
      equal(`${challenge.kind}:${challenge.fields.code}`, 'err:failed', 'no counter: no challenge number');
      equal(cg.send('counter').reply.fields.code, 'failed', 'counter: failed');
      equal(cg.send('outbox').reply.kind, 'ok', 'the outbox still answers');
    },
  },
];

// ------------------------------------------------------------ power cuts

/** Runtime partitions in blocks 0..TOTAL_BLOCKS-1, the update partitions (otadata, two slots, progress) after them. */
function cutFlashOptions(mode: FlashMode) {
  return { ...flashOptions(mode), blocks: TOTAL_BLOCKS + updateFlashOptions(mode).blocks };
}

function updateView(flash: FlashPartition) {
  return updatePartitionsOf(new PartitionView(flash, TOTAL_BLOCKS, updateFlashOptions('plain').blocks));
}

/** The factory: every store formatted, the factory image in ota_0, release 2 staged into ota_1 (the device restarts into its trial). */
function provisionAll(flash: FlashPartition, fleet: Fleet, world: World, release: Release): void {
  provision(flash, fleet);
  const update = updateView(flash);
  provisionDevice(update, world.factory.image);
  const state = newDeviceState(world, {}, release);
  restarts(() => bootOnce(new PartitionView(flash, TOTAL_BLOCKS, updateFlashOptions('plain').blocks), world, state), 'the factory boot stages the release');
}

interface CutState {
  provisioned: boolean;
  /** 0 confirm, 1 safe-mode on, 2 safe-mode off, 3 rollback, 4 reboot, 5 done. */
  step: number;
  /** Safe-mode transitions the state held when the last answer returned. */
  answered: number;
  /** State-changing commands answered ok, by op (their console-command entries are durable). */
  commands: Record<string, number>;
  confirmed: boolean;
  /** A cut before the confirm was answered let the bootloader abort the trial: nothing to confirm. */
  trialLost: boolean;
  rolledBack: boolean;
  /** The command sent whose answer has not come back (a cut may strike it). */
  inFlight: string | undefined;
  /** Audit counters seen after a completed step: never lost. */
  entries: number[];
}

interface CutTally {
  trialLost: number;
  rollbackLanded: number;
  confirmLanded: number;
  rollbackRefused: number;
}

/** The update agent's test world with Ed25519 verification memoised (sound: same bytes, same answer), and its release 2 built once: keeps the XS runs affordable. */
function cutWorld(): { world: World; release: Release } {
  const made = makeWorld();
  const world: World = { ...made, crypto: memoCrypto(made.crypto) };
  return { world, release: world.release(2, 1) };
}

function consoleCutScenario(mode: FlashMode, tally: CutTally): CutScenario<CutState> {
  const fleet = makeFleet();
  const { world, release } = cutWorld();
  return {
    name: `runtime/console/${mode}`,
    flash: cutFlashOptions(mode),
    createState: () => ({ provisioned: false, step: 0, answered: 0, commands: {}, confirmed: false, trialLost: false, rolledBack: false, inFlight: undefined, entries: [] }),
    boot(flash, state) {
      if (!state.provisioned) {
        provisionAll(flash, fleet, world, release);
        state.provisioned = true;
      }
      for (;;) {
        // ---- recovery: the bootloader decides, the runtime boots
        const update = updateView(flash);
        const decision = new SimBootloader({ otadata: update.otadata, slots: update.slots, createSha256: () => world.crypto.createSha256(), chip: world.chip }).boot();
        if (state.rolledBack) equal(decision.slot, 0, 'an answered rollback boots the old slot');
        else if (state.confirmed && decision.slot === 0 && state.inFlight === 'rollback') {
          // The rollback was cut before its answer, after its otadata write: it landed.
          state.rolledBack = true;
          state.step = 4;
          tally.rollbackLanded++;
        } else if (state.confirmed) equal(`${decision.slot}:${decision.state}`, '1:valid', 'an answered confirm stays: slot 1 VALID');
        state.inFlight = undefined;
        const d = bootDevice(flash, fleet, {
          extraPartitions: { otadata: update.otadata, ota_0: update.slots[0], ota_1: update.slots[1], hf_progress: update.progress },
          bootControl: { runningSlot: () => decision.slot, runningState: () => {
            throw new Error('the runtime does not ask');
          }, requestTrial: () => undefined, confirmRunning: () => undefined, rejectRunning: () => undefined },
          config: { update: { boardId: BOARD, chip: world.chip, watchdogTimeoutMs: WATCHDOG_MS } },
        });
        const read = readAudit(flash, fleet);
        equal(read.breaks.length, 0, `audit chain breaks: ${JSON.stringify(read.breaks)}`);
        const counters = read.records.map((r) => r.counter);
        for (const n of state.entries) ok(counters.includes(n), `audit entry ${n} lost`);
        for (const [op, n] of Object.entries(state.commands)) {
          const seen = read.records.filter((r) => r.event?.kind === 'console-command' && (r.event as { op: string }).op === op).length;
          ok(seen >= n, `${n} ${op} command(s) answered, ${seen} audited`);
        }
        const transitions = d.runtime.status().safeMode.transitions ?? -1;
        ok(transitions >= state.answered, `an answered safe-mode transition was lost: ${transitions} < ${state.answered}`);
        const c = host(d, fleet);
        equal(c.send('status').reply.fields.locked, 'true', 'locked after every boot');
        if (state.step >= 5) return;
        equal(c.unlock().kind, 'ok', 'unlocked');
        try {
          if (state.step === 0) {
            const r = c.send('confirm').reply;
            if (r.kind === 'ok') state.confirmed = true;
            else {
              // A cut before the answer: the commit landed (slot 1 VALID), or the trial was lost (the bootloader aborts an unconfirmed trial at the next boot).
              equal(r.fields.code, 'not-in-trial', `confirm: ${JSON.stringify(r.fields)}`);
              if (decision.slot === 1) {
                equal(decision.state, 'valid', 'no trial on slot 1: the unanswered confirm landed');
                state.confirmed = true;
                tally.confirmLanded++;
              } else {
                state.trialLost = true;
                tally.trialLost++;
              }
            }
            state.commands.confirm = (state.commands.confirm ?? 0) + 1;
            state.step = 1;
          }
          if (state.step === 1) {
            const r = c.send('safe-mode', { mode: 'on' }).reply;
            equal(`${r.kind}:${r.fields['safe-mode']}`, 'ok:true', 'on');
            state.answered = d.runtime.status().safeMode.transitions ?? -1;
            state.commands['safe-mode'] = (state.commands['safe-mode'] ?? 0) + 1;
            state.step = 2;
          }
          if (state.step === 2) {
            const r = c.send('safe-mode', { mode: 'off' }).reply;
            equal(`${r.kind}:${r.fields['safe-mode']}`, 'ok:false', 'off');
            state.answered = d.runtime.status().safeMode.transitions ?? -1;
            state.commands['safe-mode'] = (state.commands['safe-mode'] ?? 0) + 1;
            state.step = 3;
          }
          state.entries = readAudit(flash, fleet).records.map((r) => r.counter);
          if (state.step === 3) {
            state.inFlight = 'rollback';
            const r = c.send('rollback').reply;
            state.inFlight = undefined;
            state.commands.rollback = (state.commands.rollback ?? 0) + 1;
            if (r.kind === 'ok') {
              state.rolledBack = true;
              state.step = 4;
              d.runtime.service();
              throw new Error('the rollback did not restart');
            }
            // From the old slot (the trial lost) there is no valid image to fall back to.
            equal(`${r.fields.code}:${state.trialLost}`, 'rollback-impossible:true', `rollback: ${JSON.stringify(r.fields)}`);
            tally.rollbackRefused++;
            state.step = 4;
          }
          if (state.step === 4) {
            equal(c.send('reboot').reply.kind, 'ok', 'reboot answered');
            state.commands.reboot = (state.commands.reboot ?? 0) + 1;
            state.step = 5;
            d.runtime.service();
            throw new Error('the reboot did not restart');
          }
        } catch (error) {
          if (!(error instanceof DeviceReset)) throw error;
          // A restart: the next turn of the loop is the next boot.
        }
      }
    },
  };
}

/** Flash operations of the factory (not cut: a factory that loses power starts over). */
function factoryOperations(env: Parameters<FirmwareCase['run']>[0], mode: FlashMode): number {
  const flash = env.createFlash(cutFlashOptions(mode));
  const before = flash.counters.operations;
  const { world, release } = cutWorld();
  provisionAll(flash, makeFleet(), world, release);
  return flash.counters.operations - before;
}

for (const mode of ['plain', 'strict'] as const) {
  cases.push({
    name: `power cuts at every flash operation of the console's state changes (${mode}): confirm, safe-mode on, safe-mode off, rollback, reboot; an answered change is never lost, every answered command is audited, the console is locked after each boot`,
    run(env): CaseReport {
      // XS is slow at this (every run boots the runtime several times): its strict run is in the exhaustive tier (HOLDFAST_EXHAUSTIVE=1), as the MQTT update suite's.
      if (env.engine === 'xs' && mode === 'strict' && !exhaustiveTier()) return { xsStrictInExhaustiveTierOnly: true };
      const tally: CutTally = { trialLost: 0, rollbackLanded: 0, confirmLanded: 0, rollbackRefused: 0 };
      const from = factoryOperations(env, mode);
      // XS in the CI tier: every cut point torn in 'prefix' mode (Node, and XS in the exhaustive tier, tear both ways).
      const tears = env.engine === 'xs' && !exhaustiveTier() ? { tears: ['prefix'] as const } : {};
      const report = runExhaustive(consoleCutScenario(mode, tally), runnerOptions(env, { variants: exhaustiveTier() ? 4 : 1, ...tears, cutRange: { from, to: Number.MAX_SAFE_INTEGER } }));
      ok(report.cutPoints > 0, 'cut points');
      // Both outcomes of a cut before an answer occur and are handled.
      ok(tally.trialLost > 0 && tally.confirmLanded > 0, `cuts before the confirm's answer: trial lost ${tally.trialLost}, confirm landed ${tally.confirmLanded}`);
      ok(tally.rollbackLanded > 0, `cuts during the rollback that landed: ${tally.rollbackLanded}`);
      return { ...report, factoryOperations: from, ...tally };
    },
  });
}

export const suite: CaseSuite = { name: 'runtime serial console', cases };
