/**
 * The safe-mode state (firmware/runtime/safe-mode.ts, docs/spec/safe-mode.md)
 * in Node and XS, plain and strict flash: each transition of the table,
 * persistence across reopen, fail closed (blank, foreign, newer, an unknown
 * cause code all read as safe mode), the leave that formats an unreadable
 * partition, rotation over many transitions, and power cuts at every flash
 * operation of a run of transitions: after every cut the state reads as the
 * last transition that returned, or the one in flight, never anything else.
 */
import { TwoBlockLog } from '../../firmware/base/two-block-log.ts';
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { SAFE_MODE_CAUSE_CODES, SAFE_MODE_LOG, SafeModeStore, type SafeModeEntryCause } from '../../firmware/runtime/safe-mode.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import { equal, ok, throws } from '../support/check.ts';
import { garbage, runnerOptions } from '../support/case-helpers.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';

/** Small blocks (5 pairs) so a run of transitions rotates the log. */
const BLOCK = 160;
const MODES: readonly FlashMode[] = ['plain', 'strict'];

function fresh(env: CaseEnv, mode: FlashMode = 'plain'): FlashPartition {
  const flash = env.createFlash({ blocks: 2, blockLength: BLOCK, mode });
  SafeModeStore.format(flash);
  return flash;
}

const cases: FirmwareCase[] = [
  {
    name: 'a formatted partition reads normal mode, cause none; enter is durable, a second enter writes nothing and keeps the first cause',
    run(env) {
      for (const mode of MODES) {
        const flash = fresh(env, mode);
        const s = SafeModeStore.open(flash);
        equal(s.active, false, `${mode}: fresh is normal`);
        equal(s.status().cause, 'none', 'cause none');
        equal(s.enter('policy'), 'entered', 'enter');
        const again = SafeModeStore.open(flash);
        equal(again.active, true, 'entered survives a reopen');
        equal(again.status().cause, 'policy', 'with its cause');
        equal(again.status().code, SAFE_MODE_CAUSE_CODES.policy, 'and its code');
        const before = again.stats()?.recordsWritten;
        equal(again.enter('command'), 'already-active', 'enter while active');
        equal(again.stats()?.recordsWritten, before, 'nothing written');
        equal(SafeModeStore.open(flash).status().cause, 'policy', 'the first cause stays');
      }
    },
  },
  {
    name: 'leave is durable (normal, cause command); leave while normal writes nothing; every entry cause round-trips',
    run(env) {
      const causes: SafeModeEntryCause[] = ['command', 'policy', 'storage', 'clock', 'no-rollback'];
      const flash = fresh(env);
      for (const cause of causes) {
        const s = SafeModeStore.open(flash);
        equal(s.leave('command'), 'not-active', `${cause}: leave while normal`);
        equal(s.enter(cause), 'entered', `${cause}: enter`);
        const t = SafeModeStore.open(flash);
        equal(t.status().cause, cause, `${cause}: read back`);
        equal(t.leave('command'), 'left', `${cause}: leave`);
        const u = SafeModeStore.open(flash).status();
        equal(u.active, false, `${cause}: left survives a reopen`);
        equal(u.cause, 'command', `${cause}: left by command`);
      }
      equal(SafeModeStore.open(flash).status().transitions, 2 * causes.length, 'two transitions per cause');
      throws(() => SafeModeStore.open(flash).enter('bogus' as SafeModeEntryCause), 'TypeError', 'unknown cause');
    },
  },
  {
    name: 'fail closed: blank, foreign and newer-format partitions read as safe mode (cause unreadable, the StorageError code kept); leave formats them to normal',
    run(env) {
      const variants: [string, (f: FlashPartition) => void, string][] = [
        ['blank', () => undefined, 'blank'],
        ['foreign', (f) => f.write(0, garbage(BLOCK, 1)), 'not-formatted'],
        [
          'newer format',
          (f) => {
            TwoBlockLog.format(f, { ...SAFE_MODE_LOG, version: SAFE_MODE_LOG.version + 1 });
          },
          'format-too-new',
        ],
      ];
      for (const [what, damage, code] of variants) {
        const flash = env.createFlash({ blocks: 2, blockLength: BLOCK, mode: 'plain' });
        damage(flash);
        const s = SafeModeStore.open(flash);
        equal(s.active, true, `${what}: safe`);
        equal(s.status().cause, 'unreadable', `${what}: cause`);
        equal(s.status().unreadable, code, `${what}: code`);
        equal(s.status().code, SAFE_MODE_CAUSE_CODES.unreadable, `${what}: health code`);
        equal(s.enter('command'), 'already-active', `${what}: enter writes nothing`);
        equal(s.leave('command'), 'left', `${what}: leave`);
        equal(SafeModeStore.open(flash).active, false, `${what}: normal after the leave`);
      }
    },
  },
  {
    name: 'a cause code this firmware does not know reads as safe mode, on an odd or an even count; leave writes the next even count',
    run(env) {
      for (const transitions of [3, 4]) {
        const flash = fresh(env);
        const log = TwoBlockLog.open(flash, SAFE_MODE_LOG);
        log.write(0, transitions * 256 + 0x7f);
        const s = SafeModeStore.open(flash);
        equal(s.active, true, `count ${transitions}: safe`);
        equal(s.status().cause, 'unreadable', `count ${transitions}: cause`);
        equal(s.status().code, 0x7f, 'the unknown code is shown');
        equal(s.leave('command'), 'left', 'leave');
        const after = SafeModeStore.open(flash).status();
        equal(after.active, false, 'normal');
        equal(after.transitions, transitions % 2 === 1 ? transitions + 1 : transitions + 2, 'next even count');
        equal(SafeModeStore.open(flash).enter('clock'), 'entered', 'enter again');
        equal(SafeModeStore.open(flash).status().transitions, (after.transitions as number) + 1, 'next odd count');
      }
    },
  },
  {
    name: 'quarantine: from normal one write (cause 0x08); from safe with another cause the cause is replaced with one write (count + 2, still safe); again writes nothing; durable across a reopen; the ordinary leave then leaves (the runtime refuses it while quarantined)',
    run(env) {
      const flash = fresh(env, 'strict');
      const s = SafeModeStore.open(flash);
      equal(s.quarantine(), 'entered', 'from normal');
      equal(`${s.status().cause}:${s.status().transitions}:${s.status().code}`, `quarantine:1:${SAFE_MODE_CAUSE_CODES.quarantine}`, 'one transition');
      equal(s.quarantine(), 'already-active', 'again');
      equal(SafeModeStore.open(flash).status().transitions, 1, 'nothing written');
      equal(s.leave('command'), 'left', 'left (store level)');
      equal(s.enter('clock'), 'entered', 'safe for the clock');
      equal(s.quarantine(), 'entered', 'quarantine from safe mode');
      const again = SafeModeStore.open(flash).status();
      equal(`${again.active}:${again.cause}:${again.transitions}`, 'true:quarantine:5', 'durable: count 3 + 2, still odd');
      const unreadable = SafeModeStore.open(env.createFlash({ blocks: 2, blockLength: BLOCK, mode: 'plain' }));
      equal(`${unreadable.quarantine()}:${unreadable.status().cause}`, 'already-active:unreadable', 'unreadable: stays safe, nothing can be written');
    },
  },
  {
    name: 'forty transitions in 160-byte blocks rotate the log; the state stays exact',
    run(env) {
      for (const mode of MODES) {
        const flash = fresh(env, mode);
        for (let i = 0; i < 40; i++) {
          const s = SafeModeStore.open(flash);
          equal(s.active, i % 2 === 1, `${mode}: before transition ${i}`);
          if (i % 2 === 0) s.enter('storage');
          else s.leave('command');
        }
        const s = SafeModeStore.open(flash);
        equal(s.status().transitions, 40, `${mode}: 40 transitions`);
        ok((s.stats()?.generation ?? 0) > 3, `${mode}: the log rotated (generation ${s.stats()?.generation})`);
      }
    },
  },
  ...MODES.map((mode): FirmwareCase => ({
    name: `power cuts at every flash operation of 12 transitions (${mode}): the state reads as the last transition that returned, or the one in flight`,
    run: (env) => ({ ...runExhaustive(transitionScenario(mode), runnerOptions(env)) }),
  })),
];

interface TransitionState {
  formatted: boolean;
  /** Transitions that returned. */
  done: number;
  /** The transition in flight when a cut struck (its index), if any. */
  inFlight: number | undefined;
}

const TRANSITIONS = 12;

function transitionScenario(mode: FlashMode): CutScenario<TransitionState> {
  return {
    name: `safe-mode/${mode}/${TRANSITIONS}`,
    flash: { blocks: 2, blockLength: BLOCK, mode },
    createState: () => ({ formatted: false, done: 0, inFlight: undefined }),
    boot(flash, state) {
      if (!state.formatted) {
        SafeModeStore.format(flash);
        state.formatted = true;
      }
      for (;;) {
        const s = SafeModeStore.open(flash);
        const st = s.status();
        ok(st.cause !== 'unreadable', `the state is unreadable after a cut (${String(st.unreadable)})`);
        const t = st.transitions as number;
        // Either the in-flight transition landed (t = done + 1) or it did not (t = done).
        if (state.inFlight !== undefined && t === state.done + 1) state.done++;
        equal(t, state.done, 'transitions durable');
        equal(s.active, t % 2 === 1, 'mode follows the count');
        state.inFlight = undefined;
        if (state.done === TRANSITIONS) return;
        state.inFlight = state.done;
        if (state.done % 2 === 0) equal(s.enter('command'), 'entered', 'enter');
        else equal(s.leave('command'), 'left', 'leave');
        state.inFlight = undefined;
        state.done++;
      }
    },
  };
}

export const suite: CaseSuite = { name: 'runtime safe-mode state', cases };
