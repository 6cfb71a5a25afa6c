/**
 * Revocation on the device (docs/spec/revocation.md, "On the device"), in
 * Node and XS: the revocation store (firmware/security/revocation-store.ts)
 * and the runtime's use of it. A signed list arrives on the fleet-wide
 * retained topic `holdfast/fleet/revocation`, is verified with the
 * provisioned revocation key, persisted when newer, and from then on a
 * command signed by a revoked command key is refused (audited, answered)
 * with no network; a list naming this device puts it in safe mode (cause
 * `revoked`) with no leave; a damaged store is the boot failure
 * `revocation-unreadable` and refuses every command. Power cuts at every
 * flash operation of persisting a list, both flash modes.
 */
import type { FlashPartition } from '../../firmware/hal/flash.ts';
import { StorageError } from '../../firmware/base/storage-error.ts';
import { MAX_REVOCATION_ENTRIES, RevocationError, type RevocationEntry } from '../../firmware/security/revocation.ts';
import { REVOCATION_SLOT_HEADER, RevocationStore } from '../../firmware/security/revocation-store.ts';
import { decodeCommandReply, COMMAND_REPLY_TYPE } from '../../firmware/runtime/command-reply.ts';
import { REVOCATION_TOPIC } from '../../firmware/runtime/main.ts';
import { SafeModeStore } from '../../firmware/runtime/safe-mode.ts';
import { equal, ok, throws } from '../support/check.ts';
import type { CaseEnv, CaseSuite, FirmwareCase } from '../support/cases.ts';
import { runnerOptions } from '../support/case-helpers.ts';
import { runExhaustive, type CutScenario } from '../../tools/sim/power-cut.ts';
import type { FlashMode } from '../../tools/sim/flash/sim-flash.ts';
import { auditSummary, bootDevice, flashOptions, makeFleet, partsOf, provision, type Device, type Fleet } from './runtime-world.ts';
import { connect, deliver, subscribed, telemetryRecords } from './mqtt-link-support.ts';
import type { FakeBroker } from '../protocol/session-broker.ts';
import { TEST_DEVICE_ID } from '../support/test-device.ts';

const AFTER_BOOT_MS = 61_000;
const STORE_FLASH = { blocks: 4, blockLength: 4096 } as const;

function storeFlash(env: CaseEnv, mode: FlashMode, fleet: Fleet): FlashPartition {
  const flash = env.createFlash({ ...STORE_FLASH, mode });
  RevocationStore.format(flash, fleet.crypto);
  return flash;
}

/** The code of the typed error `run` throws (StorageError or RevocationError), or `ok`. */
function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof StorageError || error instanceof RevocationError) return error.code;
    throw error;
  }
  return 'ok';
}

interface World {
  readonly flash: FlashPartition;
  readonly revoke: FlashPartition;
}

function world(env: CaseEnv, fleet: Fleet): World {
  const flash = env.createFlash(flashOptions('plain'));
  provision(flash, fleet);
  return { flash, revoke: storeFlash(env, 'plain', fleet) };
}

function boot(w: World, fleet: Fleet): Device {
  const d = bootDevice(w.flash, fleet, { config: { revocationKey: fleet.revocationKey }, extraPartitions: { hf_revoke: w.revoke } });
  d.clock.advance(AFTER_BOOT_MS);
  return d;
}

function online(d: Device): FakeBroker {
  d.runtime.service();
  d.clock.advance(1_000);
  d.runtime.service();
  return connect(d);
}

const COMMAND_KEY_REVOKED = (fleet: Fleet): RevocationEntry[] => [{ kind: 'command-key', keyId: fleet.keyId }];

const cases: FirmwareCase[] = [
  {
    name: 'revocation store: formatted holds no list; a newer list is accepted and survives a reopen; equal, older, wrongly signed lists are refused; the largest list (512 entries) fits; blank, damaged and newer-format stores are typed StorageErrors',
    run(env) {
      const fleet = makeFleet();
      const flash = storeFlash(env, 'strict', fleet);
      const store = RevocationStore.open(flash, fleet.crypto, fleet.revocationKey);
      equal(`${store.holding().number}:${String(store.holding().list)}`, '0:undefined', 'no list yet');
      equal(store.accept(fleet.revocationList(3, COMMAND_KEY_REVOKED(fleet))).number, 3, 'list 3 accepted');
      equal(codeOf(() => store.accept(fleet.revocationList(3))), 'not-newer', 'equal number refused');
      equal(codeOf(() => store.accept(fleet.revocationList(2))), 'not-newer', 'older refused');
      const forged = fleet.revocationList(9);
      forged[forged.length - 1] ^= 1;
      equal(codeOf(() => store.accept(forged)), 'bad-signature', 'bad signature refused');
      equal(codeOf(() => RevocationStore.open(flash, fleet.crypto, fleet.publicKey)), 'damaged', 'opened with another revocation key, the held list does not verify: damaged');
      const other = storeFlash(env, 'plain', fleet);
      equal(codeOf(() => RevocationStore.open(other, fleet.crypto, fleet.publicKey).accept(fleet.revocationList(10))), 'wrong-signer', 'a store keyed with another key refuses the fleet list');
      const again = RevocationStore.open(flash, fleet.crypto, fleet.revocationKey).holding();
      equal(`${again.number}:${again.list?.entries.length}`, '3:1', 'list 3 after a reopen');
      const entries: RevocationEntry[] = [];
      for (let i = 0; i < MAX_REVOCATION_ENTRIES; i++) entries.push({ kind: 'device', deviceId: Uint8Array.of(0xe0, 0, 0, 0, 0, 0, i >> 8, i & 0xff) });
      store.accept(fleet.revocationList(4, entries));
      equal(RevocationStore.open(flash, fleet.crypto, fleet.revocationKey).holding().list?.entries.length, MAX_REVOCATION_ENTRIES, '512 entries kept');

      equal(codeOf(() => RevocationStore.open(env.createFlash({ ...STORE_FLASH, mode: 'plain' }), fleet.crypto, fleet.revocationKey)), 'blank', 'never formatted: blank');
      // Damage in the only committed slot: damaged, never "no list".
      const plain = storeFlash(env, 'plain', fleet);
      RevocationStore.open(plain, fleet.crypto, fleet.revocationKey).accept(fleet.revocationList(5, COMMAND_KEY_REVOKED(fleet)));
      for (const at of [0, 8, REVOCATION_SLOT_HEADER + 20]) {
        const copy = env.createFlash({ ...STORE_FLASH, mode: 'plain' });
        const bytes = new Uint8Array(STORE_FLASH.blocks * STORE_FLASH.blockLength);
        plain.read(0, bytes);
        const half = bytes.length / 2;
        const used = bytes[0] === 0xff ? half : 0;
        bytes[used + at] ^= 0x10;
        copy.write(0, bytes);
        equal(codeOf(() => RevocationStore.open(copy, fleet.crypto, fleet.revocationKey)), 'damaged', `a flipped bit at ${at} of the committed slot: damaged`);
      }
      const newer = env.createFlash({ ...STORE_FLASH, mode: 'plain' });
      const image = new Uint8Array(STORE_FLASH.blocks * STORE_FLASH.blockLength);
      plain.read(0, image);
      image[(image[0] === 0xff ? image.length / 2 : 0) + 4] = 2;
      newer.write(0, image);
      equal(codeOf(() => RevocationStore.open(newer, fleet.crypto, fleet.revocationKey)), 'format-too-new', 'newer format');
      throws(() => RevocationStore.open(env.createFlash({ blocks: 2, blockLength: 4096, mode: 'plain' }), fleet.crypto, fleet.revocationKey), 'StorageError', 'two blocks cannot hold two slots of the largest list');
    },
  },
  {
    name: 'over MQTT: the device subscribes to holdfast/fleet/revocation; a list revoking the command key is accepted (audited, persisted), and a command signed by that key is then refused key-revoked, audited command-revoked and answered; an equal list again changes nothing; after a reboot with no network the stored list still refuses',
    run(env) {
      const fleet = makeFleet();
      const w = world(env, fleet);
      const d = boot(w, fleet);
      const broker = online(d);
      ok(subscribed(broker).includes(REVOCATION_TOPIC), `subscribed: ${subscribed(broker).join(', ')}`);
      equal(d.runtime.handleCommand(fleet.command(100, 'report-status', { section: 0 })).result.status, 'accepted', 'a command before any list');
      deliver(d, broker, REVOCATION_TOPIC, fleet.revocationList(1, COMMAND_KEY_REVOKED(fleet)));
      const status = d.runtime.status().revocation;
      equal(JSON.stringify(status), '{"state":"held","number":1,"entries":1,"commandKeyRevoked":true,"deviceRevoked":false}', 'held');
      deliver(d, broker, 'holdfast/' + 'd10000000000000a' + '/cmd', fleet.command(101, 'report-status', { section: 0 }));
      const replies = telemetryRecords(broker, fleet.crypto)
        .filter((r) => r[0] === COMMAND_REPLY_TYPE)
        .map((r) => decodeCommandReply(r));
      const last = replies[replies.length - 1];
      equal(`${last?.status}:${last?.reason}:${last?.counter}`, 'refused:key-revoked:101', 'answered refused');
      deliver(d, broker, REVOCATION_TOPIC, fleet.revocationList(1, COMMAND_KEY_REVOKED(fleet)));
      const audit = auditSummary(w.flash, fleet);
      equal(audit.filter((e) => e.startsWith('revocation-accepted')).length, 1, `one acceptance audited: ${audit.join(',')}`);
      ok(audit.some((e) => e.startsWith('command-revoked')), `command-revoked audited: ${audit.join(',')}`);
      ok(!audit.some((e) => e.startsWith('revocation-refused')), 'the same list again is not audited');
      // Reboot, no network: the stored list refuses.
      const again = boot(w, fleet);
      equal(JSON.stringify(again.runtime.status().revocation), '{"state":"held","number":1,"entries":1,"commandKeyRevoked":true,"deviceRevoked":false}', 'held after a reboot');
      const outcome = again.runtime.handleCommand(fleet.command(2_000, 'report-status', { section: 0 }));
      equal(outcome.result.status === 'refused' ? outcome.result.reason : outcome.result.status, 'key-revoked', 'refused offline after a reboot');
      equal(again.runtime.status().mode, 'normal', 'a revoked command key is no safe-mode cause');
      const forged = fleet.revocationList(2);
      forged[forged.length - 2] ^= 1;
      again.runtime.receiveRevocationList(forged);
      ok(auditSummary(w.flash, fleet).some((e) => e.startsWith('revocation-refused:bad-signature')), 'a forged list is refused and audited');
    },
  },
  {
    name: 'a list naming this device: safe mode (cause revoked, persisted), a signed leave-safe-mode is refused while it stands, also after a reboot; updates and diagnostics only',
    run(env) {
      const fleet = makeFleet();
      const w = world(env, fleet);
      const d = boot(w, fleet);
      d.runtime.receiveRevocationList(fleet.revocationList(7, [{ kind: 'device', deviceId: TEST_DEVICE_ID }]));
      equal(`${d.runtime.status().mode}:${d.runtime.status().safeMode.cause}`, 'safe:revoked', 'safe mode, cause revoked');
      equal(d.runtime.handleCommand(fleet.command(100, 'leave-safe-mode')).mode, 'leave-refused', 'leave refused');
      equal(d.runtime.handleCommand(fleet.command(101, 'report-status', { section: 0 })).result.status, 'accepted', 'diagnostics still answered');
      const again = boot(w, fleet);
      equal(`${again.runtime.status().mode}:${again.runtime.status().safeMode.cause}`, 'safe:revoked', 'after a reboot');
      equal(again.runtime.handleCommand(fleet.command(2_000, 'leave-safe-mode')).mode, 'leave-refused', 'leave refused after a reboot');
      equal(SafeModeStore.open(partsOf(w.flash).safeMode as FlashPartition).status().cause, 'revoked', 'persisted');
      ok(auditSummary(w.flash, fleet).some((e) => e === 'safe-mode-entered:revoked'), 'audited');
    },
  },
  {
    name: 'boot failure: revocation store unreadable (damaged or blank): revocation-unreadable, safe mode (storage), every command refused revocation-unavailable (fail closed, not "no list")',
    run(env) {
      const fleet = makeFleet();
      for (const damage of ['blank', 'damaged'] as const) {
        const w = world(env, fleet);
        if (damage === 'blank') for (let b = 0; b < 4; b++) w.revoke.eraseBlock(b);
        else {
          RevocationStore.open(w.revoke, fleet.crypto, fleet.revocationKey).accept(fleet.revocationList(1));
          const image = new Uint8Array(4 * 4096);
          w.revoke.read(0, image);
          const at = image[0] === 0xff ? image.length / 2 : 0;
          for (let b = 0; b < 4; b++) w.revoke.eraseBlock(b);
          image[at + REVOCATION_SLOT_HEADER + 3] ^= 0x04;
          w.revoke.write(0, image);
        }
        const d = boot(w, fleet);
        const s = d.runtime.status();
        ok(s.failures.some((f) => f.code === 'revocation-unreadable' && f.cause === damage), `${damage}: ${s.failures.map((f) => `${f.code}/${f.cause}`).join(',')}`);
        equal(`${s.mode}:${s.revocation.state}`, 'safe:unreadable', `${damage}: safe, unreadable`);
        const outcome = d.runtime.handleCommand(fleet.command(100, 'report-status', { section: 0 }));
        equal(outcome.result.status === 'refused' ? outcome.result.reason : outcome.result.status, 'revocation-unavailable', `${damage}: refused`);
      }
    },
  },
  ...(['plain', 'strict'] as const).map(
    (mode): FirmwareCase => ({
      name: `power cuts at every flash operation of persisting revocation lists (${mode}): after a cut the store holds the last accepted list or the one in flight, never less, never damaged`,
      run: (env) => ({ ...runExhaustive(storeScenario(mode), runnerOptions(env, { variants: 2 })) }),
    }),
  ),
];

interface StoreState {
  formatted: boolean;
  accepted: number;
  inFlight: number | undefined;
}

function storeScenario(mode: FlashMode): CutScenario<StoreState> {
  const fleet = makeFleet();
  const lists = [1, 2, 3].map((n) => fleet.revocationList(n, n === 2 ? COMMAND_KEY_REVOKED(fleet) : [{ kind: 'device-key', deviceId: TEST_DEVICE_ID, keyId: n }]));
  return {
    name: `runtime/revocation-store/${mode}`,
    flash: { ...STORE_FLASH, mode },
    createState: () => ({ formatted: false, accepted: 0, inFlight: undefined }),
    boot(flash, state) {
      if (!state.formatted) {
        RevocationStore.format(flash, fleet.crypto);
        state.formatted = true;
      }
      const store = RevocationStore.open(flash, fleet.crypto, fleet.revocationKey);
      const held = store.holding().number;
      ok(held >= state.accepted, `an accepted list was lost: holds ${held}, ${state.accepted} accepted`);
      ok(held === state.accepted || held === state.inFlight, `holds ${held}: neither the accepted ${state.accepted} nor the one in flight ${String(state.inFlight)}`);
      state.accepted = held;
      state.inFlight = undefined;
      for (const list of lists.slice(held)) {
        state.inFlight = held + 1 + lists.slice(held).indexOf(list);
        store.accept(list);
        state.accepted = state.inFlight;
        state.inFlight = undefined;
      }
    },
  };
}

export const suite: CaseSuite = { name: 'revocation on the device', cases };
