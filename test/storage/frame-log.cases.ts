/**
 * The frame log under power cuts: the runner's demonstration on a small
 * flash-writing module, in Node and in XS, plus a broken codec it must catch.
 */
import { FrameLog, FRAME_CODEC, type FrameCodec } from '../../firmware/storage/frame-log.ts';
import { runExhaustive, runRandom, PowerCutFailure, type CutScenario } from '../../tools/sim/power-cut.ts';
import { Rng } from '../../tools/sim/rng.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { bytesEqual, CheckFailure, equal, ok } from '../support/check.ts';
import type { CaseEnv, CaseSuite } from '../support/cases.ts';
import { UNCHECKED_FRAME_CODEC } from './fixtures/unchecked-frame-codec.ts';

interface LogState {
  formatted: boolean;
  /** Payloads whose append returned, or that recovery showed to be durable. */
  durable: Uint8Array[];
  /** The append under way when the power went. */
  inFlight: Uint8Array | undefined;
}

function payload(index: number): Uint8Array {
  const rng = new Rng(index + 1);
  const bytes = new Uint8Array(20 + ((index * 37) % 220));
  rng.fill(bytes);
  return bytes;
}

export function frameLogScenario(mode: FlashMode, total: number, codec: FrameCodec = FRAME_CODEC): CutScenario<LogState> {
  return {
    name: `frame-log/${mode}/${total}${codec === FRAME_CODEC ? '' : '/unchecked'}`,
    flash: { blocks: 6, mode },
    createState: () => ({ formatted: false, durable: [], inFlight: undefined }),
    boot(flash, state) {
      const log = new FrameLog(flash, codec);
      if (!state.formatted) {
        log.format();
        state.formatted = true;
      }
      const seen: Uint8Array[] = [];
      log.mount((p) => seen.push(p));
      checkRecovered(seen, state);
      while (state.durable.length < total) {
        const next = payload(state.durable.length);
        state.inFlight = next;
        log.append(next);
        state.durable.push(next);
        state.inFlight = undefined;
      }
    },
  };
}

/** Invariant: exactly the durable appends, in order, plus at most the one in flight. */
function checkRecovered(seen: Uint8Array[], state: LogState): void {
  const extra = seen.length - state.durable.length;
  ok(extra === 0 || (extra === 1 && state.inFlight !== undefined), `recovered ${seen.length} frames, ${state.durable.length} were durable`);
  state.durable.forEach((p, i) => bytesEqual(seen[i], p, `frame ${i}`));
  if (extra === 1 && state.inFlight) {
    bytesEqual(seen[seen.length - 1], state.inFlight, 'the frame in flight');
    state.durable.push(state.inFlight);
  }
  state.inFlight = undefined;
}

function runnerOptions(env: CaseEnv) {
  return { createFlash: env.createFlash, saveFailureImage: env.saveFailureImage };
}

export const suite: CaseSuite = {
  name: 'frame-log power cuts',
  cases: [
    {
      name: 'exhaustive cuts, plain NOR',
      run: (env) => ({ ...runExhaustive(frameLogScenario('plain', 40), runnerOptions(env)) }),
    },
    {
      name: 'exhaustive cuts, strict (16-byte write-once units)',
      run: (env) => ({ ...runExhaustive(frameLogScenario('strict', 40), runnerOptions(env)) }),
    },
    {
      name: 'random multi-cut runs',
      run: (env) => ({ ...runRandom(frameLogScenario('plain', 60), { ...runnerOptions(env), runs: 60, maxCuts: 3, seed: 7 }) }),
    },
    {
      name: 'the runner catches a codec that skips the CRC',
      run(env) {
        let caught: PowerCutFailure | undefined;
        try {
          runExhaustive(frameLogScenario('plain', 40, UNCHECKED_FRAME_CODEC), { ...runnerOptions(env), saveFailureImage: () => undefined });
        } catch (error) {
          if (!(error instanceof PowerCutFailure)) throw error;
          caught = error;
        }
        ok(caught, 'the broken codec passed every power cut');
        ok(caught.failure instanceof CheckFailure, `failure should be an invariant violation, was ${String(caught.failure)}`);
        equal(caught.cutPlans.length, 1, 'one cut in the failing run');
        ok(/replay: replayCuts/.test(caught.message), 'the failure says how to replay');
        return { caughtAtOperation: caught.cutPlans[0].atOperation };
      },
    },
  ],
};
