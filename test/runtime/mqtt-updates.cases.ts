/**
 * Updates over MQTT (docs/spec/device-topics.md, "Updates"), in Node and
 * XS: the signed manifest on the device's update topic, the image in chunks
 * the device asks for with update-request records, served by the responder
 * of tools/update-server/responder.ts, streamed into the update agent;
 * resumed after a link loss and after power cuts at every flash operation
 * of the download and install (plain and strict); the trial boot commits
 * after "broker reached" and "first record acknowledged" pass, and rolls
 * back when the broker is never reached. The update message codec.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { readOtadata, stateOfSlot } from '../../firmware/update/otadata.ts';
import {
  decodeUpdateMessage,
  decodeUpdateRequest,
  encodeChunkMessage,
  encodeManifestMessage,
  encodeUpdateRequest,
  MAX_CHUNK_LENGTH,
  UPDATE_REQUEST_TYPE,
  type UpdateMessageError,
} from '../../firmware/update/update-messages.ts';
import { exhaustiveTier, runExhaustive, runRandom, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { DeviceReset } from '../../tools/sim/watchdog.ts';
import { equal, ok, throws } from '../support/check.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import type { CaseEnv, CaseReport, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { makeWorld, type Release, type World } from '../update/agent-world.ts';
import { chunkLengthFor } from '../../firmware/runtime/mqtt-updates.ts';
import { auditSummary, BLOCK, makeFleet, type Fleet } from './runtime-world.ts';
import { bootUpdateDevice, Cloud, combinedFlashOptions, provisionAll, split, UPDATE_TOPIC, type UpdateBoot } from './mqtt-update-world.ts';

const LINK_CHECKS = { linkChecks: { brokerReachedMs: 20_000, firstReceiptMs: 40_000 } };

/** Audit kinds of the update path (the runtime audits much else). */
function updateAudit(flash: FlashPartition, fleet: Fleet): string {
  return auditSummary(split(flash).runtime, fleet)
    .filter((k) => /^(update|trial)/.test(k))
    .join(' ');
}

function restarted(run: () => void): DeviceReset | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof DeviceReset) return error;
    throw error;
  }
  return undefined;
}

/** Step a trial boot's clock in quarter-watchdog steps, pumping the cloud, until it restarts or `ms` passed. */
function runFor(boot: UpdateBoot, cloud: Cloud | undefined, ms: number): DeviceReset | undefined {
  return restarted(() => {
    for (let t = 0; t < ms; t += 500) {
      boot.d.clock.advance(500);
      if (cloud) cloud.pump(boot.d);
      else boot.d.runtime.service();
    }
  });
}

interface Setup {
  fleet: Fleet;
  world: World;
  release: Release;
  flash: FlashPartition;
  cloud: Cloud;
}

function setup(env: CaseEnv, mode: FlashMode = 'plain'): Setup {
  const fleet = makeFleet();
  const world = makeWorld();
  const release = world.release(2, 1);
  const flash = env.createFlash(combinedFlashOptions(mode));
  provisionAll(flash, fleet, world);
  return { fleet, world, release, flash, cloud: new Cloud(fleet, { manifest: release.manifest, image: release.image }) };
}

/** Boot 1 on the factory image: the cloud pushes the manifest and serves chunks until the device restarts into its trial. */
function download(s: Setup): DeviceReset {
  const boot = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
  equal(boot.decision.slot, 0, 'factory slot');
  s.cloud.connect(boot.d);
  const reset = restarted(() => s.cloud.pushOffer(boot.d));
  ok(reset !== undefined, `the last chunk restarts the device (stats ${JSON.stringify(boot.d.runtime.updateStats())})`);
  return reset as DeviceReset;
}

const cases: FirmwareCase[] = [
  {
    name: 'update messages are queued by the socket callback and handled at the scheduler\'s turn: the last chunk restarts the device from service(), never from inside the socket callback',
    run(env) {
      const s = setup(env);
      const boot = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      s.cloud.connect(boot.d);
      const send = s.cloud.send.bind(s.cloud);
      let fromCallback = 0;
      let maxQueued = 0;
      s.cloud.send = (d, topic, payload) => {
        try {
          send(d, topic, payload);
        } catch (error) {
          if (error instanceof DeviceReset) fromCallback++;
          throw error;
        }
        maxQueued = Math.max(maxQueued, d.runtime.inboxStats().queued);
      };
      const reset = restarted(() => s.cloud.pushOffer(boot.d));
      ok(reset !== undefined && /update staged/.test(reset.message), 'the last chunk restarted the device');
      equal(fromCallback, 0, 'no restart inside a socket callback');
      ok(maxQueued >= 1, 'messages waited in the inbox');
      const inbox = boot.d.runtime.inboxStats();
      equal(inbox.droppedUpdates, 0, 'nothing dropped');
      return { handled: inbox.handled, maxQueued };
    },
  },
  {
    name: 'an update over MQTT: manifest pushed, every chunk asked for and served once, staged and selected; the trial boot reaches the broker, its first record is acknowledged, and it commits',
    run(env) {
      const s = setup(env);
      const reset = download(s);
      ok(/update staged/.test(reset.message), `restart reason: ${reset.message}`);
      // Blocks of 4096 bytes asked for in pieces that fit the device's 4096-byte Maximum Packet Size with the topic and headers.
      const piece = chunkLengthFor(4096, UPDATE_TOPIC);
      equal(piece, 3840, 'piece length');
      let chunks = 0;
      for (let at = 0; at < s.release.image.length; at += BLOCK) chunks += Math.ceil(Math.min(BLOCK, s.release.image.length - at) / piece);
      equal(s.cloud.served, s.release.image.length, 'each byte served once');
      equal(s.cloud.responder.stats().chunksSent, chunks, 'one chunk per piece');
      equal(s.cloud.accepted.get(UPDATE_REQUEST_TYPE), chunks, 'one request per piece');
      // Boot 2: the trial. Its checks pass once the broker answered and a receipt released a record.
      const trial = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      equal(trial.decision.slot, 1, 'the new slot on trial');
      equal(trial.d.runtime.status().trial, 'running', 'trial running');
      s.cloud.connect(trial.d);
      equal(runFor(trial, s.cloud, 5_000), undefined, 'no restart');
      equal(trial.d.runtime.status().trial, 'committed', 'committed');
      const { update } = split(s.flash);
      equal(stateOfSlot(readOtadata(update.otadata), 1), 'valid', 'slot 1 valid');
      equal(updateAudit(s.flash, s.fleet), 'update-staged trial-started update-committed', 'audit');
      return { chunks, served: s.cloud.served };
    },
  },
  {
    name: 'a link lost in the middle of the download: on the next CONNACK the device asks again for the chunk it needs and the download finishes',
    run(env) {
      const s = setup(env);
      const boot = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      s.cloud.connect(boot.d);
      // The responder is slow: the first request is answered only after the link failed.
      const offer = s.cloud.offer;
      s.cloud.send(boot.d, UPDATE_TOPIC, encodeManifestMessage(s.release.manifest));
      s.cloud.offer = undefined; // requests go unanswered
      s.cloud.pump(boot.d);
      const wanted = boot.d.runtime.updateStats()?.wanted;
      equal(wanted?.offset, 0, 'waiting for chunk 0');
      boot.d.net.last.fail('link lost');
      boot.d.clock.advance(50);
      boot.d.runtime.service();
      s.cloud.offer = offer;
      const reset = restarted(() => s.cloud.connect(boot.d));
      ok(reset !== undefined && /update staged/.test(reset.message), 'finished after the reconnect');
      ok((boot.d.runtime.updateStats()?.requests ?? 0) >= 2, 'asked again');
      return { requests: boot.d.runtime.updateStats()?.requests ?? 0 };
    },
  },
  {
    name: 'a reboot in the middle of the download: the progress log names the image, the first CONNACK asks for its manifest (nobody pushes it), and staging resumes at the first block not done',
    run(env) {
      const s = setup(env);
      const first = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      s.cloud.connect(first.d);
      // Enough pieces for the first block only (3,840 + 256 bytes), then the cloud goes quiet; the device is reset.
      s.cloud.chunkBudget = 2;
      s.cloud.pushOffer(first.d);
      equal(first.d.runtime.updateStats()?.wanted?.offset, BLOCK, 'block 0 staged, waiting for block 1');
      const servedBefore = s.cloud.served;
      const cloud = new Cloud(s.fleet, s.cloud.offer);
      const second = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      ok(second.d.runtime.updateStats()?.resumeTag !== undefined, 'the interrupted download is known at boot');
      const reset = restarted(() => cloud.connect(second.d));
      ok(reset !== undefined && /update staged/.test(reset.message), 'finished without a push');
      equal(cloud.responder.stats().manifestsSent, 1, 'the manifest was asked for');
      // Requests of the first boot still unreceipted in the outbox go out again and are answered; the device takes only the block it needs.
      equal(second.d.runtime.updateStats()?.chunks, Math.ceil((s.release.image.length - BLOCK) / chunkLengthFor(4096, UPDATE_TOPIC)), 'only the block not done was staged');
      ok(cloud.served <= s.release.image.length + BLOCK, `served ${cloud.served} bytes after the reboot`);
      return { servedBefore, servedAfter: cloud.served, ignored: second.d.runtime.updateStats()?.ignored ?? 0 };
    },
  },
  {
    name: 'a trial boot that never reaches the broker rolls back (broker reached: not passed within its deadline); the factory image runs again',
    run(env) {
      const s = setup(env);
      download(s);
      const trial = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      equal(trial.decision.slot, 1, 'trial of slot 1');
      // No connection is ever accepted.
      const reset = runFor(trial, undefined, 30_000);
      ok(reset !== undefined && /rollback: broker reached/.test(reset.message), `rolled back: ${reset?.message}`);
      const after = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      equal(after.decision.slot, 0, 'back on the factory slot');
      ok(/update-rolled-back/.test(updateAudit(s.flash, s.fleet)), 'rollback audited');
    },
  },
  {
    name: 'a trial boot that reaches the broker but whose records are never acknowledged rolls back (first record acknowledged)',
    run(env) {
      const s = setup(env);
      download(s);
      const trial = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      s.cloud.receipts = false;
      s.cloud.connect(trial.d);
      const reset = runFor(trial, s.cloud, 50_000);
      ok(reset !== undefined && /rollback: first record acknowledged/.test(reset.message), `rolled back: ${reset?.message}`);
    },
  },
  {
    name: 'during a trial boot update offers are ignored (the inactive slot is the rollback target); a malformed update message is counted, never thrown',
    run(env) {
      const s = setup(env);
      download(s);
      const trial = bootUpdateDevice(s.flash, s.fleet, s.world, LINK_CHECKS);
      s.cloud.receipts = false;
      s.cloud.connect(trial.d);
      // The requests of the download boot that no receipt released are sent again, answered, and ignored here.
      const before = trial.d.runtime.updateStats()?.ignored ?? 0;
      s.cloud.send(trial.d, UPDATE_TOPIC, encodeManifestMessage(s.world.release(3, 1).manifest));
      s.cloud.send(trial.d, UPDATE_TOPIC, Uint8Array.of(1, 2, 0, 0, 9));
      s.cloud.pump(trial.d);
      const stats = trial.d.runtime.updateStats();
      equal((stats?.ignored ?? 0) - before, 1, 'offer ignored');
      equal(stats?.malformed, 1, 'malformed counted');
      equal(stats?.manifests, 0, 'no offer taken');
    },
  },
  ...(['plain', 'strict'] as const).map(
    (mode): FirmwareCase => ({
      name: `power cuts at every flash operation of a download over MQTT, its install and the trial's commit (${mode}): the device always boots an image, resumes, re-fetches at most one block per boot, and ends committed on release 2`,
      run: (env): CaseReport => {
        // CI tier: every cut point in Node for both modes and in XS for plain (about 40 s there); strict in XS, extra torn variants and second cuts in the exhaustive tier.
        if (env.engine === 'xs' && mode === 'strict' && !exhaustiveTier()) return { xsStrictInExhaustiveTierOnly: true };
        const report: CaseReport = { ...runExhaustive(updateScenario(mode), runnerOptions(env, { variants: exhaustiveTier() ? 4 : 1, secondCuts: exhaustiveTier() ? { sample: 4 } : 'none' })) };
        return report;
      },
    }),
  ),
  {
    name: 'random multi-cut runs over a download over MQTT (strict)',
    run: (env) => ({ ...runRandom(updateScenario('strict'), { ...runnerOptions(env), runs: exhaustiveTier() ? 60 : 8, maxCuts: 3, seed: 91 }) }),
  },
  {
    name: 'update message codec: manifest and chunk round-trip; bounds checked before copying; newer formats, bad kinds, wrong lengths refused with a code',
    run() {
      const m = decodeUpdateMessage(encodeManifestMessage(Uint8Array.of(1, 2, 3)));
      equal(m.kind === 'manifest' ? Array.from(m.manifest).join(',') : '', '1,2,3', 'manifest');
      const bytes = new Uint8Array(MAX_CHUNK_LENGTH).fill(7);
      const c = decodeUpdateMessage(encodeChunkMessage(0xdeadbeef, 8192, bytes));
      ok(c.kind === 'chunk' && c.tag === 0xdeadbeef && c.offset === 8192 && c.bytes.length === MAX_CHUNK_LENGTH, 'chunk');
      const code = (bytes: Uint8Array, want: string, maxChunk?: number): void => {
        const e = throws(() => decodeUpdateMessage(bytes, maxChunk), 'UpdateMessageError', want) as UpdateMessageError;
        equal(e.code, want, 'code');
      };
      const chunk = encodeChunkMessage(1, 0, Uint8Array.of(1, 2, 3, 4));
      code(chunk.subarray(0, 3), 'truncated');
      code(chunk.subarray(0, 17), 'truncated');
      code(Uint8Array.of(...chunk, 0), 'truncated');
      code(chunk, 'too-long', 3);
      const long = chunk.slice();
      long[12] = 0x01;
      long[13] = 0x10; // 4097
      code(long, 'too-long');
      code(Uint8Array.of(2, 1, 0, 0, 5), 'format-too-new');
      code(Uint8Array.of(0, 1, 0, 0, 5), 'bad-version');
      code(Uint8Array.of(1, 3, 0, 0, 5), 'bad-kind');
      code(Uint8Array.of(1, 1, 0, 1, 5), 'bad-field');
      code(Uint8Array.of(1, 1, 0, 0), 'truncated');
      code(new Uint8Array(4 + 5000).fill(1, 0, 2).fill(0, 2, 4), 'too-long');
      const r = encodeUpdateRequest({ kind: 'chunk', tag: 5, offset: 4096, length: 100 });
      equal(r.length, 16, 'request length');
      const back = decodeUpdateRequest(r);
      ok(back.kind === 'chunk' && back.tag === 5 && back.offset === 4096 && back.length === 100, 'request round trip');
      equal(decodeUpdateRequest(encodeUpdateRequest({ kind: 'manifest', tag: 9, offset: 0, length: 0 })).kind, 'manifest', 'manifest request');
      const bad = r.slice();
      bad[12] = 0;
      bad[13] = 0x20; // 8192 + ...
      throws(() => decodeUpdateRequest(bad), 'UpdateMessageError', 'request length over the bound');
      const newer = r.slice();
      newer[1] = 2;
      throws(() => decodeUpdateRequest(newer), 'UpdateMessageError', 'newer request');
      throws(() => encodeChunkMessage(1, 0, new Uint8Array(0)), 'RangeError', 'empty chunk');
      throws(() => encodeUpdateRequest({ kind: 'chunk', tag: 1, offset: 0, length: MAX_CHUNK_LENGTH + 1 }), 'RangeError', 'request over the bound');
    },
  },
];

interface ScenarioState {
  provisioned: boolean;
  /** Chunk bytes served over all boots. */
  served: number;
  cuts: number;
  committed: boolean;
  boots: number;
}

function updateScenario(mode: FlashMode): CutScenario<ScenarioState> {
  const fleet = makeFleet();
  const world = makeWorld();
  const release = world.release(2, 1);
  return {
    name: `runtime/mqtt-update/${mode}`,
    flash: combinedFlashOptions(mode),
    createState: () => ({ provisioned: false, served: 0, cuts: 0, committed: false, boots: 0 }),
    boot(flash, state, bootIndex) {
      if (!state.provisioned) {
        provisionAll(flash, fleet, world);
        state.provisioned = true;
      }
      state.cuts = bootIndex;
      for (let i = 0; i < 12; i++) {
        state.boots++;
        // Re-transfer bound: every boot (a cut, or the restarts of the update) costs at most one chunk more than the image.
        ok(state.served <= release.image.length + state.boots * BLOCK, `served ${state.served} bytes for a ${release.image.length}-byte image in ${state.boots} boots`);
        const cloud = new Cloud(fleet, { manifest: release.manifest, image: release.image });
        const boot = bootUpdateDevice(flash, fleet, world, LINK_CHECKS);
        const version = boot.decision.header.imageVersion;
        ok(version === 1 || version === 2, `boots an image (version ${version})`);
        if (state.committed) equal(version, 2, 'a committed update stays');
        if (version === 2 && boot.decision.state === 'valid' && boot.d.runtime.status().trial !== 'running') {
          state.committed = true;
          return;
        }
        const reset = restarted(() => {
          cloud.connect(boot.d);
          if (version === 1) cloud.pushOffer(boot.d);
          else for (let t = 0; t < 5_000; t += 500) {
            boot.d.clock.advance(500);
            cloud.pump(boot.d);
          }
        });
        state.served += cloud.served;
        if (reset === undefined && version === 2) {
          equal(boot.d.runtime.status().trial, 'committed', 'the trial commits');
          state.committed = true;
          return;
        }
        ok(reset !== undefined, `boot ${i} on version ${version} ended without a restart (trial ${boot.d.runtime.status().trial}, ${JSON.stringify(boot.d.runtime.updateStats())})`);
      }
      throw new Error('the update did not finish in 12 boots');
    },
  };
}

export const suite: CaseSuite = { name: 'runtime updates over MQTT', cases };
