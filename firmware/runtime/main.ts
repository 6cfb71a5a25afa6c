/**
 * The firmware's entry (docs/spec/boot-sequence.md): `startRuntime(hal,
 * config)` runs the boot stages in order (reset reason, storage recovery,
 * boot slot, policy, connect, drain, serve commands) and returns the
 * runtime the host drives with `service(now)` / `nextDueMs(now)`. A
 * function, so loading the module has no effect and every boot builds
 * fresh instances (Moddable preload; a reboot is a fresh instance).
 *
 * Every stage failure is named (BootFailureCode), observable (an audit
 * event and a bit in the health record) and, per the table in boot.ts,
 * sends the device to safe mode (safe-mode.ts), which only a verified
 * command leaves. No timers, no promises: the scheduler runs on the clock
 * HAL's ticks.
 */
import type { Actuator } from '../hal/actuator.ts';
import type { BootControl, SlotIndex } from '../hal/boot-control.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import type { Crypto } from '../hal/crypto.ts';
import type { Entropy } from '../hal/entropy.ts';
import type { FlashPartition } from '../hal/flash.ts';
import type { Log } from '../hal/log.ts';
import type { StreamConnector } from '../hal/stream.ts';
import type { ResetReason, System } from '../hal/system.ts';
import type { Watchdog } from '../hal/watchdog.ts';
import { elapsedMs } from '../base/ticks.ts';
import { setErrorName } from '../base/error-name.ts';
import { StorageError, type StorageErrorCode } from '../base/storage-error.ts';
import { Counter, type CounterStats } from '../storage/counter.ts';
import { Outbox, type OutboxOptions, type OutboxStats } from '../storage/outbox.ts';
import { AuditLog, type AuditEvent, type AuditLogStats, type AuditRecord } from '../storage/audit-log.ts';
import type { CommandKey } from '../security/envelope-command.ts';
import type { CommandSuite } from '../security/envelope-format.ts';
import { deriveDeviceKeys, type DeviceKeys } from '../security/envelope-keys.ts';
import { envelopePrimitives } from '../security/envelope-primitives.ts';
import { ReplayStore, type ReplayStoreOptions } from '../security/replay-store.ts';
import { ReplayError } from '../security/replay-window.ts';
import { isCommandKeyRevoked, isDeviceRevoked, RevocationError, type RevocationList } from '../security/revocation.ts';
import { RevocationStore } from '../security/revocation-store.ts';
import { deviceTopic, TelemetryLink, type TelemetryLinkEvent, type TelemetryLinkOptions, type TelemetryLinkStats } from '../protocol/telemetry/index.ts';
import { isTrustUnavailable, loadTrust, UpdateAgent, type TrialBoot, type TrialState, type TrustReading } from '../update/agent.ts';
import { TrustStore } from '../update/trust-store.ts';
import { FloorStore } from '../update/floor-store.ts';
import { brokerReached, firstRecordAcknowledged, runtimeStarted, type HealthCheck } from '../update/health.ts';
import { imageVersionOf, readEspAppDesc, verifyEspAppImage, type EspChip } from '../update/esp-app-image.ts';
import { OtadataError, readOtadata, stateOfSlot } from '../update/otadata.ts';
import { CommandProcessor, type CommandEvent, type CommandResult } from './commands.ts';
import { SafeModeStore, type SafeModeEntryCause, type SafeModeLeaveCause, type SafeModeState } from './safe-mode.ts';
import { encodeHealthRecord, HealthCounters, RECORD_TYPES, type HealthRecord, type SlotStateReading } from './health-record.ts';
import { Scheduler, type TaskStats } from './scheduler.ts';
import { Inbox, type InboxOptions, type InboxStats } from './inbox.ts';
import { chunkLengthFor, DEFAULT_UPDATE_RETRY_MS, MqttUpdates, type MqttUpdatesStats } from './mqtt-updates.ts';
import { encodeCommandReply, ENVELOPE_DIGEST_PREFIX, type UnavailableReason } from './command-reply.ts';
import { DeviceKeyRotation, type RotationAnswer } from './_key-rotation.ts';
import { auditOfUpdate, auditToken, deriveAuditKey, failureBit, failureRow, PARTITION_LABELS, type BootFailure, type BootFailureCode, type BootStage, type PartitionKey } from './boot.ts';

export const RUNTIME_NAME = 'holdfast';

export interface RuntimeHal {
  readonly system: System;
  readonly log: Log;
  readonly clock: MonotonicClock;
  readonly entropy: Entropy;
  readonly watchdog: Watchdog;
  readonly crypto: Crypto;
  readonly connector: StreamConnector;
  readonly actuator: Actuator;
  /** Absent on a board without A/B slots: slot states read as unknown, running slot 0. */
  readonly bootControl?: BootControl;
  /** The flash partition with this label (boot.ts, PARTITION_LABELS), or undefined when the table has none. */
  partition(label: string): FlashPartition | undefined;
}

export interface RuntimeUpdateConfig {
  readonly boardId: string;
  readonly chip: EspChip;
  /** Watchdog timeout during a trial boot. */
  readonly watchdogTimeoutMs: number;
  /** Health checks of a trial boot (default: runtime started). */
  readonly checks?: readonly HealthCheck[];
  /** How often the trial is stepped (default a quarter of the watchdog timeout). */
  readonly stepMs?: number;
  /**
   * Add the link's health checks to the trial: "broker reached" (a CONNACK
   * in this boot) and "first record acknowledged" (a receipt received in
   * this boot released a record from flash), each failing at its deadline, so a
   * trial that cannot reach the broker rolls back. A device target sets it.
   */
  readonly linkChecks?: { readonly brokerReachedMs: number; readonly firstReceiptMs: number };
  /** Where manifests and chunks arrive (default `holdfast/<id>/update`; docs/spec/device-topics.md). */
  readonly topic?: string;
  /** Ask again for a chunk after this long without it while connected (default 30 s). */
  readonly requestRetryMs?: number;
}

export interface RuntimeConfig {
  /** 8 bytes. */
  readonly deviceId: Uint8Array;
  /** The provisioned device secret (32..64 bytes): envelope, receipt and audit keys derive from it. */
  readonly deviceSecret: Uint8Array;
  readonly keyId: number;
  /**
   * The provisioning record's device key seed (Ed25519, field 5): signs the
   * old half of a key rotation. Absent: rotation unavailable
   * (docs/spec/key-rotation.md); the command key is the rotation authority.
   */
  readonly deviceKeySeed?: Uint8Array;
  /** The fleet's command key, and its sender index in the replay store (default 0). */
  readonly commandKey: CommandKey;
  readonly commandSender?: number;
  readonly commandSuites?: readonly CommandSuite[];
  /** Broker, session, client and receipt settings of the telemetry link (topic defaults to the device's). */
  readonly link: Omit<TelemetryLinkOptions, 'outbox' | 'counter' | 'keys' | 'primitives' | 'subscriptions'>;
  /** Where commands arrive (default `holdfast/<id>/cmd`); each is answered by a command-reply record in the telemetry stream (docs/spec/device-topics.md). */
  readonly commandTopic?: string;
  readonly counterReserve?: number;
  readonly replay?: ReplayStoreOptions;
  readonly journalSlots?: number;
  readonly outbox?: OutboxOptions;
  /** Absent: no update agent (slot states are still read when the partitions exist). */
  readonly update?: RuntimeUpdateConfig;
  /** Health record period (default 60 s; the first goes out at boot). */
  readonly healthPeriodMs?: number;
  /** How often unpublished audit entries are appended to the outbox (default 10 s), and how many at a time (default 8). */
  readonly auditPublishPeriodMs?: number;
  readonly auditPublishBatch?: number;
  /** Outbox sectors found damaged at recovery from which on the device goes to safe mode (default 1). */
  readonly outboxDamageThreshold?: number;
  /**
   * The inbox of command and update messages waiting for the scheduler
   * (inbox.ts): default 8 messages and twice the MQTT Maximum Packet Size in
   * bytes (RAM: the device's heap is small; the update path has one chunk
   * in flight); a message that does not fit is dropped and counted.
   */
  readonly inbox?: InboxOptions;
  /** A signed time that disagrees with the monotonic clock by more than this is a clock jump (default 2 min). */
  readonly clockJumpBoundMs?: number;
  /** ... and by more than this, clock manipulation: safe mode (default 24 h). */
  readonly clockManipulationBoundMs?: number;
  /**
   * The fleet's revocation-list key (the provisioning record's field 9). Set:
   * the runtime opens its revocation store (`hf_revoke`), subscribes to the
   * revocation topic, refuses commands signed by a revoked command key, and
   * enters safe mode (cause `revoked`) when a list names this device. Absent:
   * no store, no subscription, no list is accepted.
   */
  readonly revocationKey?: Uint8Array;
  /** Where the fleet's signed revocation list is published, retained (default `holdfast/fleet/revocation`, docs/spec/device-topics.md). */
  readonly revocationTopic?: string;
}

/** The fleet-wide retained topic of the signed revocation list (docs/spec/device-topics.md). */
export const REVOCATION_TOPIC = 'holdfast/fleet/revocation';

/** What the runtime knows of revocation: no key provisioned, the store unreadable, or the number and entries of the held list (0: none yet). */
export type RevocationStatus = { readonly state: 'no-key' } | { readonly state: 'unreadable' } | { readonly state: 'held'; readonly number: number; readonly entries: number; readonly commandKeyRevoked: boolean; readonly deviceRevoked: boolean };

export type DeviceModeName = 'normal' | 'safe';

/** What `handleCommand` did: the processor's result and what it did to the mode. */
export interface CommandOutcome {
  readonly result: CommandResult | { readonly status: 'unavailable'; readonly reason: string };
  readonly mode: 'unchanged' | 'entered' | 'left' | 'leave-refused';
  readonly detail?: string;
  /** An accepted roll-back-update: what the runtime did with it (docs/spec/commands.md, 0x21). */
  readonly rollBack?: CommandRollBack;
  /** An accepted rotate-key or confirm-key-rotation: what the runtime did with it (docs/spec/key-rotation.md). */
  readonly rotation?: RotationAnswer;
}

/** `rolling-back`: marked INVALID, audited `update-rolled-back` `commanded`, restart scheduled; otherwise refused and audited `rollback-impossible`. */
export type CommandRollBack = 'rolling-back' | 'not-running' | 'rollback-impossible' | 'no-update-agent';

export type AppendOutcome = { readonly accepted: true; readonly counter: number; readonly seq: number } | { readonly accepted: false; readonly reason: 'link-unavailable' | 'full' | 'too-large' | 'storage' };

export interface RuntimeStatus {
  readonly mode: DeviceModeName;
  readonly safeMode: SafeModeState;
  readonly resetReason: ResetReason;
  readonly failures: readonly BootFailure[];
  readonly bootFailureBits: number;
  readonly uptimeMs: number;
  readonly runningSlot: SlotIndex | null;
  readonly slotStates: readonly [SlotStateReading, SlotStateReading];
  readonly imageVersion: number | null;
  readonly securityFloor: number | null;
  readonly trial: TrialState | 'none';
  readonly linkConnected: boolean;
  readonly replayRejections: number;
  readonly forgeryRejections: number;
  readonly clockJumps: number;
  /** Audit events that could not be appended (no log, or the log refused). */
  readonly auditLost: number;
  readonly healthRecords: number;
  readonly auditPublished: number;
  /** Command-reply records appended (commands answered over MQTT). */
  readonly commandReplies: number;
  /** Command and update messages dropped this boot because the inbox was full. */
  readonly inboxDropped: number;
  readonly revocation: RevocationStatus;
  /** The envelope key id that seals in this boot, and a rotation pending (its new key id) or null. */
  readonly keyId: number;
  readonly keyPending: number | null;
}

/** The result of an operator's action on the runtime (the console's confirm, rollback, safe mode): done with its facts, or refused with a token code. */
export type RuntimeActionResult =
  | { readonly ok: true; readonly fields: Readonly<Record<string, string | number | boolean | null>> }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** One app slot as the console shows it. */
export interface RuntimeSlotView {
  readonly slot: SlotIndex;
  readonly running: boolean;
  /** Its otadata state ('none': no copy names it; 'unreadable': otadata does not read; null: no otadata partition). */
  readonly state: string | null;
  /** Its image passes the bootloader's checks (null: not known, no update agent to check with). */
  readonly verifies: boolean | null;
  readonly secureVersion: number | null;
  readonly imageVersion: number | null;
}

export interface Runtime {
  readonly resetReason: ResetReason;
  service(now?: number): void;
  nextDueMs(now?: number): number | undefined;
  append(reading: Uint8Array): AppendOutcome;
  /** A command envelope a host delivers: decided and audited, answered to the caller only (the command topic's are also answered in telemetry). */
  handleCommand(envelope: Uint8Array): CommandOutcome;
  /**
   * A revocation list as received on the revocation topic (the link queues
   * it for the scheduler; a host may hand one in directly): verified with
   * the provisioned revocation key, persisted when newer, enforced. Refusals
   * are audited (`revocation-refused`) except an equal or older number.
   */
  receiveRevocationList(bytes: Uint8Array): void;
  /** A command envelope as received on the command topic: `handleCommand`, then its answer appended as a command-reply record (none for an unauthenticated one). */
  answerCommand(envelope: Uint8Array): CommandOutcome;
  /** A time carried by a signed message (wall-clock ms, untrusted metadata): compared, audited, never a reason to refuse. */
  noteSignedTime(wallMs: number, now?: number): void;
  status(): RuntimeStatus;
  counterStats(): CounterStats | undefined;
  outboxStats(): OutboxStats | undefined;
  linkStats(): TelemetryLinkStats | undefined;
  auditStats(): AuditLogStats | undefined;
  /** The newest `count` audit entries, oldest first (reads the ring: a console command, not a loop). */
  auditTail(count: number): readonly AuditRecord[];
  tasks(): TaskStats[];
  /** The MQTT update path's counts (undefined without an update agent). */
  updateStats(): MqttUpdatesStats | undefined;
  /** The inbox of command and update messages waiting for the scheduler. */
  inboxStats(): InboxStats;
  /** The health record as it would be published now. */
  healthRecord(now?: number): HealthRecord;
  /** Both app slots: otadata state, whether the image verifies, its versions (reads and hashes the slots: a console command, not a loop). */
  slots(): readonly [RuntimeSlotView, RuntimeSlotView];
  /**
   * Confirm the running trial image now (an operator's `confirm`): only while
   * a trial runs and every one of its checks passes (`not-in-trial`,
   * `checks-failed`, `checks-pending` otherwise); then the update agent
   * commits it as the trial would (its CONFIRMED record, VALID, the floor;
   * audited `update-committed`).
   */
  confirmTrial(): RuntimeActionResult;
  /**
   * Roll back to the other slot (an operator's `rollback`), by the update
   * agent's rule (the other image verifies at or above the floor; audited
   * `update-rolled-back`, or `rollback-impossible` and refused). The restart
   * is scheduled (`restartPending`), not done here, so an answer can go out first.
   */
  rollBack(reason: string): RuntimeActionResult;
  /**
   * Safe mode from the unlocked console: on enters it with cause `console`
   * (persisted, audited `safe-mode-entered`); off leaves it (audited
   * `safe-mode-left` `console`) only when no cause found in this boot stands,
   * as for the signed leave-safe-mode (docs/spec/safe-mode.md).
   */
  setSafeMode(on: boolean, cause: 'console'): RuntimeActionResult;
  /** Schedule a restart: the next `service` restarts through the system HAL (log line `restart requested`). */
  requestRestart(reason: string): void;
  /** The reason of a scheduled restart, or undefined. */
  restartPending(): string | undefined;
  /** Append an event to the audit log, durable when it returns; throws StorageError when it cannot (no log, or the log refused). */
  appendAudit(event: AuditEvent): void;
  /**
   * Values of the persistent counter (strictly increasing across reboots and
   * power cuts; shared with telemetry and audit): the console's challenge
   * numbers. `next` throws StorageError when the counter did not open.
   */
  counterValues(): { next(): number };
}

/** Thrown through the update agent to stop its restart when a restart is to be scheduled instead (never leaves the runtime). */
class RestartDeferred extends Error {
  constructor(readonly reason: string) {
    super(`restart deferred: ${reason}`);
    setErrorName(this, 'RestartDeferred');
  }
}

export function startRuntime(hal: RuntimeHal, config: RuntimeConfig): Runtime {
  return new DeviceRuntime(hal, config);
}

const DEFAULTS = Object.freeze({
  healthPeriodMs: 60_000,
  auditPublishPeriodMs: 10_000,
  auditPublishBatch: 8,
  outboxDamageThreshold: 1,
  clockJumpBoundMs: 120_000,
  clockManipulationBoundMs: 86_400_000,
});

class DeviceRuntime implements Runtime {
  readonly resetReason: ResetReason;
  private readonly hal: RuntimeHal;
  private readonly config: RuntimeConfig;
  private readonly scheduler = new Scheduler();
  private readonly failures: BootFailure[] = [];
  private readonly pendingAudit: AuditEvent[] = [];
  private counter: Counter | undefined;
  private audit: AuditLog | undefined;
  private auditOpened = false;
  private outbox: Outbox | undefined;
  private replay: ReplayStore | undefined;
  private trust: TrustReading | undefined;
  private floor: FloorStore | undefined;
  private safe!: SafeModeStore;
  private commands: CommandProcessor | undefined;
  private agent: UpdateAgent | undefined;
  private trial: TrialBoot | undefined;
  private trialState: TrialState | 'none' = 'none';
  private link: TelemetryLink | undefined;
  private keys: DeviceKeys | undefined;
  private readonly commandTopic: string;
  private readonly updateTopic: string;
  private updates: MqttUpdates | undefined;
  private readonly inbox: Inbox;
  private readonly revocationTopic: string;
  private revocations: RevocationStore | undefined;
  private keyRotation: DeviceKeyRotation | undefined;
  /** This device is named by the held list: safe mode, and no leave while it is. */
  private deviceRevoked = false;
  private lastInboxAudit = 0;
  private brokerReachedThisBoot = false;
  private linkConnected = false;
  private lastTick: number;
  private lastDropped = 0;
  /** Counts of this boot (health-record.ts owns what each one counts). */
  private readonly counts = new HealthCounters();
  private clockBase: { wallMs: number; monoMs: number } | undefined;
  private clockManipulated = false;
  private lastPublished = 0;
  private checks: readonly HealthCheck[] = [];
  private restartReason: string | undefined;
  /** While true the update agent's restarts are scheduled, not done (an operator's action answers first). */
  private deferRestarts = false;
  /** The System the update agent restarts through: the HAL's, or a scheduled restart while `deferRestarts`. */
  private readonly agentSystem: System = {
    lastResetReason: () => this.hal.system.lastResetReason(),
    restart: (reason: string): never => {
      if (!this.deferRestarts) return this.hal.system.restart(reason);
      this.requestRestart(reason);
      throw new RestartDeferred(reason);
    },
  };

  constructor(hal: RuntimeHal, config: RuntimeConfig) {
    if (typeof hal !== 'object' || hal === null) throw new TypeError('runtime hal must be an object');
    if (typeof config !== 'object' || config === null) throw new TypeError('runtime config must be an object');
    this.hal = hal;
    this.config = config;
    this.lastTick = hal.clock.ticks();
    this.commandTopic = config.commandTopic ?? deviceTopic(config.deviceId, 'cmd');
    this.updateTopic = config.update?.topic ?? deviceTopic(config.deviceId, 'update');
    this.revocationTopic = config.revocationTopic ?? REVOCATION_TOPIC;
    this.inbox = new Inbox({ capacity: config.inbox?.capacity, maxBytes: config.inbox?.maxBytes ?? 2 * config.link.session.maximumPacketSize });
    // Stage 1: reset reason.
    this.resetReason = hal.system.lastResetReason();
    hal.log.write('info', 'runtime', 'boot', { resetReason: this.resetReason });
    if (this.resetReason === 'watchdog') this.auditEvent({ kind: 'watchdog-reset', reason: 'watchdog', resets: 1 });
    // Stage 2: storage recovery.
    this.recoverStorage();
    // Stage 3: boot slot (a trial boot arms the watchdog and runs the health checks).
    this.bootSlot();
    // Stage 4: policy, and the mode that follows from every failure so far.
    this.decideMode();
    // Stages 5-7: connect, drain (the link task), serve commands (handleCommand).
    this.connect();
    const now = this.lastTick;
    this.scheduler.every('health', this.config.healthPeriodMs ?? DEFAULTS.healthPeriodMs, (t) => this.publishHealth(t), now, 0);
    this.scheduler.every('audit-publish', this.config.auditPublishPeriodMs ?? DEFAULTS.auditPublishPeriodMs, () => this.publishAudit(), now, 0);
    // Messages from the link wait in the inbox; those queued when its turn comes are handled, before the link, so their answers go out in the same turn.
    this.scheduler.poll('inbox', { nextDueMs: () => (this.inbox.length > 0 ? 0 : undefined), service: (t) => this.handleInboxMessages(t) });
    // The link last: what the tasks before it appended goes out in the same turn.
    if (this.link !== undefined) this.scheduler.poll('link', this.link);
    // A scheduled restart runs after everything else of its turn (the console's reply is already out).
    this.scheduler.poll('restart', { nextDueMs: () => (this.restartReason === undefined ? undefined : 0), service: () => this.restartNow() });
  }

  // ------------------------------------------------------------ stages

  private partition(key: PartitionKey, failure: BootFailureCode | undefined): FlashPartition | undefined {
    const label = PARTITION_LABELS[key];
    const flash = this.hal.partition(label);
    if (flash === undefined && failure !== undefined) {
      this.fail('partition-missing', 'storage', label, `no partition labelled ${label}`);
      this.fail(failure, failureRow(failure).stage, 'partition-missing', `no partition labelled ${label}`);
    }
    return flash;
  }

  /** Open `open()` and turn its typed refusal (StorageError, or the replay store's ReplayError) into failure `code`; other errors propagate (bugs, bad configuration). */
  private openStore<T>(code: BootFailureCode, open: () => T): T | undefined {
    try {
      return open();
    } catch (error) {
      if (!(error instanceof StorageError) && !(error instanceof ReplayError)) throw error;
      this.fail(code, failureRow(code).stage, error.code, error.message);
      return undefined;
    }
  }

  private recoverStorage(): void {
    const { hal, config } = this;
    const counterFlash = this.partition('counter', 'counter-unreadable');
    if (counterFlash) this.counter = this.openStore('counter-unreadable', () => Counter.open(counterFlash, config.counterReserve === undefined ? undefined : { reserve: config.counterReserve }));

    const auditFlash = this.partition('audit', 'audit-unreadable');
    if (auditFlash) {
      // Entries are numbered by the persistent counter; without it, by the log's own newest counter + 1 (still strictly increasing).
      let local = 0;
      const counter = this.counter;
      const source = counter ? { next: () => counter.next() } : { next: () => ++local };
      const key = deriveAuditKey(hal.crypto, config.deviceSecret, config.deviceId, config.keyId);
      this.audit = this.openStore('audit-unreadable', () => AuditLog.open(auditFlash, { crypto: hal.crypto, key, counter: source }));
      if (this.audit) {
        local = this.audit.stats().lastCounter;
        // Publishing resumes above the ack point of the newest header: entries acknowledged since go again (the receiver knows them by counter).
        this.lastPublished = this.audit.stats().ackCounter;
        const report = this.audit.report();
        if (report.headBreaks.length > 0) this.fail('audit-damaged', 'storage', 'damaged', `${report.headBreaks.length} chain break(s) in the head block`);
      }
    }
    this.auditOpened = true;
    const pending = this.pendingAudit.splice(0, this.pendingAudit.length);
    for (const e of pending) this.auditEvent(e);

    const outboxFlash = this.partition('outbox', 'outbox-unreadable');
    if (outboxFlash) {
      this.outbox = this.openStore('outbox-unreadable', () => Outbox.open(outboxFlash, config.outbox));
      if (this.outbox) {
        const s = this.outbox.stats();
        this.lastDropped = s.dropped;
        const threshold = config.outboxDamageThreshold ?? DEFAULTS.outboxDamageThreshold;
        if (s.damagedSectors >= threshold) this.fail('outbox-damaged', 'storage', 'damage-threshold', `${s.damagedSectors} damaged sector(s), threshold ${threshold}`);
      }
    }

    const replayFlash = this.partition('replay', 'replay-unreadable');
    if (replayFlash) this.replay = this.openStore('replay-unreadable', () => ReplayStore.open(replayFlash, config.replay));

    const trustFlash = this.partition('trust', 'trust-unavailable');
    if (trustFlash) {
      const trust = this.openStore('trust-unavailable', () => loadTrust(new TrustStore(trustFlash, hal.crypto)));
      this.trust = trust ?? { unavailable: 'bad-geometry', message: 'the trust store partition cannot hold a root' };
      if (trust !== undefined && isTrustUnavailable(trust)) this.fail('trust-unavailable', 'policy', trust.unavailable, trust.message);
    } else this.trust = { unavailable: 'partition-missing', message: `no partition labelled ${PARTITION_LABELS.trust}` };

    const floorFlash = this.partition('floor', 'floor-unreadable');
    if (floorFlash) this.floor = this.openStore('floor-unreadable', () => new FloorStore(floorFlash));

    const safeFlash = this.partition('safeMode', 'safe-mode-unreadable');
    if (safeFlash) {
      this.safe = SafeModeStore.open(safeFlash);
      const s = this.safe.status();
      if (s.unreadable !== undefined) this.fail('safe-mode-unreadable', 'storage', s.unreadable, 'the safe-mode state does not open: safe mode (fail closed)');
    } else this.safe = SafeModeStore.open(unreadablePartition());

    const revocationKey = config.revocationKey;
    if (revocationKey !== undefined) {
      const revocationFlash = this.partition('revocation', 'revocation-unreadable');
      if (revocationFlash) this.revocations = this.openStore('revocation-unreadable', () => RevocationStore.open(revocationFlash, hal.crypto, revocationKey));
      const held = this.revocations?.holding().list;
      if (held !== undefined && isDeviceRevoked(held, config.deviceId)) this.deviceRevoked = true;
    }

    this.openKeyRotation();

    const journalFlash = this.partition('journal', 'journal-unreadable');
    if (this.replay && journalFlash) {
      const keys = this.deviceKeys();
      this.commands = CommandProcessor.open({
        primitives: envelopePrimitives(hal.crypto),
        deviceId: config.deviceId,
        commandKey: config.commandKey,
        keys,
        suites: config.commandSuites,
        replay: this.replay,
        sender: config.commandSender ?? 0,
        journal: journalFlash,
        journalSlots: config.journalSlots,
        actuator: hal.actuator,
        clock: hal.clock,
        onEvent: (event) => this.onCommandEvent(event),
        keyGate: (keyId) => this.commandKeyGate(keyId),
      });
    }
  }

  private bootSlot(): void {
    const { hal, config } = this;
    const update = config.update;
    if (update === undefined) return;
    const otadata = this.partition('otadata', 'update-blocked');
    const ota0 = this.partition('ota0', 'update-blocked');
    const ota1 = this.partition('ota1', 'update-blocked');
    const progress = this.partition('progress', 'update-blocked');
    const floor = this.floor;
    if (!otadata || !ota0 || !ota1 || !progress) return;
    if (floor === undefined) {
      this.fail('update-blocked', 'boot-slot', 'floor-unreadable', 'no update agent without a readable security floor');
      return;
    }
    this.agent = new UpdateAgent({
      otadata,
      slots: [ota0, ota1],
      runningSlot: this.runningSlot() ?? 0,
      progress,
      crypto: hal.crypto,
      trust: this.trust ?? { unavailable: 'partition-missing', message: 'no trust store' },
      floor,
      boardId: update.boardId,
      chip: update.chip,
      watchdog: hal.watchdog,
      clock: hal.clock,
      system: this.agentSystem,
      audit: { emit: (event) => this.auditEvent(auditOfUpdate(event)) },
    });
    const blocked = this.agent.blockedBy();
    if (blocked !== undefined && blocked.reason !== 'trust-unavailable') this.fail('update-blocked', 'boot-slot', blocked.reason, blocked.message);
    const checks = [...(update.checks ?? [runtimeStarted()])];
    if (update.linkChecks !== undefined) {
      checks.push(brokerReached(() => this.brokerReachedThisBoot, update.linkChecks.brokerReachedMs));
      checks.push(firstRecordAcknowledged(() => (this.link?.stats().gate.released ?? 0) > 0, update.linkChecks.firstReceiptMs));
    }
    this.checks = checks;
    this.trial = this.agent.beginTrial(checks, { watchdogTimeoutMs: update.watchdogTimeoutMs });
    if (this.trial !== undefined) {
      this.trialState = 'running';
      const stepMs = update.stepMs ?? Math.max(1, Math.floor(update.watchdogTimeoutMs / 4));
      this.scheduler.every('trial', stepMs, () => this.stepTrial(), this.lastTick, 0);
    }
  }

  private stepTrial(): TrialState | 'none' {
    const trial = this.trial;
    if (trial === undefined) return this.trialState;
    const state = trial.step();
    this.trialState = state;
    if (state === 'running') return state;
    this.trial = undefined;
    this.scheduler.setEnabled('trial', false, this.lastTick);
    if (state === 'rollback-impossible') {
      this.fail('rollback-impossible', 'boot-slot', 'rollback-impossible', 'a failed trial cannot be rolled back');
      this.enterSafeMode('no-rollback');
    }
    return state;
  }

  /** Stage 4: every failure with a safe-mode cause enters safe mode (the first cause is kept); a persisted safe mode is recorded again. */
  private decideMode(): void {
    const before = this.safe.status();
    if (before.active) this.auditEvent({ kind: 'safe-mode-entered', reason: auditToken(`boot.${before.cause}`) });
    for (const f of this.failures) {
      const cause = failureRow(f.code).safeMode;
      if (cause !== undefined) this.enterSafeMode(cause);
    }
    if (this.deviceRevoked) this.enterSafeMode('revoked');
  }

  private connect(): void {
    const { hal, config } = this;
    if (this.counter === undefined || this.outbox === undefined) {
      this.fail('link-unavailable', 'connect', this.counter === undefined ? 'counter-unreadable' : 'outbox-unreadable', 'no telemetry without the counter and the outbox');
      return;
    }
    const agent = this.agent;
    const progress = hal.partition(PARTITION_LABELS.progress);
    if (agent !== undefined && progress !== undefined) {
      this.updates = new MqttUpdates(
        {
          agent,
          progress,
          append: (payload) => this.appendPayload(payload).accepted,
          connected: () => this.linkConnected,
          accepting: () => this.trialState !== 'running',
          log: hal.log,
        },
        { retryMs: config.update?.requestRetryMs, maxChunk: chunkLengthFor(config.link.session.maximumPacketSize, this.updateTopic) },
      );
      this.scheduler.every('update-retry', config.update?.requestRetryMs ?? DEFAULT_UPDATE_RETRY_MS, (t) => this.updates?.tick(t), this.lastTick);
    }
    this.link = new TelemetryLink(
      { ...config.link, outbox: this.outbox, counter: this.counter, keys: this.deviceKeys(), primitives: envelopePrimitives(hal.crypto), subscriptions: this.subscriptions() },
      { connector: hal.connector, clock: hal.clock, entropy: hal.entropy, onEvent: (event) => this.onLinkEvent(event), onMessage: (topic, payload) => this.onLinkMessage(topic, payload) },
    );
    this.link.start(this.lastTick);
  }

  private subscriptions(): string[] {
    const topics = [this.commandTopic];
    if (this.updates !== undefined) topics.push(this.updateTopic);
    if (this.config.revocationKey !== undefined) topics.push(this.revocationTopic);
    return topics;
  }

  // ------------------------------------------------------------ revocation

  /** The command processor's gate: a revoked command key, or no readable list with a revocation key provisioned, refuses. */
  private commandKeyGate(keyId: number): { reason: 'key-revoked' | 'revocation-unavailable'; detail: string } | undefined {
    if (this.config.revocationKey === undefined) return undefined;
    const store = this.revocations;
    if (store === undefined) return { reason: 'revocation-unavailable', detail: 'the revocation store did not open: no command is known not to be revoked' };
    const list = store.holding().list;
    if (list !== undefined && isCommandKeyRevoked(list, keyId)) return { reason: 'key-revoked', detail: `command key ${keyId} is revoked by revocation list ${list.number}` };
    return undefined;
  }

  receiveRevocationList(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('a revocation list is a Uint8Array');
    this.onRevocationList(bytes);
  }

  /** A revocation list from the revocation topic (the scheduler's turn): verified, persisted when newer, then enforced. */
  private onRevocationList(bytes: Uint8Array): void {
    const store = this.revocations;
    if (store === undefined) {
      this.auditEvent({ kind: 'revocation-refused', reason: this.config.revocationKey === undefined ? 'no-key' : 'store-unavailable' });
      return;
    }
    let list: RevocationList;
    try {
      list = store.accept(bytes);
    } catch (error) {
      if (error instanceof RevocationError) {
        // The retained list comes again at every connect: the one held is not news.
        if (error.code === 'not-newer') return;
        this.hal.log.write('warn', 'runtime', 'revocation list refused', { code: error.code });
        this.auditEvent({ kind: 'revocation-refused', reason: error.code });
        return;
      }
      if (!(error instanceof StorageError)) throw error;
      this.hal.log.write('error', 'runtime', 'revocation list not stored', { error: error.message });
      this.auditEvent({ kind: 'revocation-refused', reason: 'storage' });
      return;
    }
    this.hal.log.write('info', 'runtime', 'revocation list accepted', { number: list.number, entries: list.entries.length });
    this.auditEvent({ kind: 'revocation-accepted', number: list.number, entries: list.entries.length });
    if (!this.deviceRevoked && isDeviceRevoked(list, this.config.deviceId)) {
      this.deviceRevoked = true;
      this.enterSafeMode('revoked');
    }
  }

  private revocationStatus(): RevocationStatus {
    if (this.config.revocationKey === undefined) return { state: 'no-key' };
    const store = this.revocations;
    if (store === undefined) return { state: 'unreadable' };
    const held = store.holding();
    const list = held.list;
    return { state: 'held', number: held.number, entries: list?.entries.length ?? 0, commandKeyRevoked: list !== undefined && isCommandKeyRevoked(list, this.config.commandKey.keyId), deviceRevoked: this.deviceRevoked };
  }

  // ------------------------------------------------------------ events

  private fail(code: BootFailureCode, stage: BootStage, cause: string, message: string): void {
    if (this.failures.some((f) => f.code === code)) return;
    this.failures.push(Object.freeze({ code, stage, cause, message }));
    this.hal.log.write('error', 'runtime', `boot stage ${stage} failed: ${code}`, { cause, message });
    if (code !== 'audit-unreadable') this.auditEvent({ kind: 'store-unreadable', store: auditToken(failureRow(code).store), code: auditToken(cause) });
    // A failure found after the mode was decided (a trial that cannot roll back) enters safe mode where it is raised.
  }

  /** Append an audit event now (before the log is opened: queued; without a log: counted as lost). */
  private auditEvent(event: AuditEvent): void {
    if (!this.auditOpened) {
      this.pendingAudit.push(event);
      return;
    }
    const audit = this.audit;
    if (audit === undefined) {
      this.counts.count('auditLost');
      return;
    }
    try {
      audit.append(event);
    } catch (error) {
      if (!(error instanceof StorageError) && !(error instanceof RangeError)) throw error;
      this.counts.count('auditLost');
      this.hal.log.write('error', 'runtime', 'audit append refused', { kind: event.kind, error: error.message });
    }
  }

  private onCommandEvent(event: CommandEvent): void {
    if (event.kind === 'command-journal-unreadable') {
      this.fail('journal-unreadable', 'storage', event.code, 'the command journal does not open: physical commands are refused');
      return;
    }
    if (event.kind !== 'command-refused') return;
    if (event.reason === 'unauthenticated') {
      this.counts.count('forgeryRejections');
      this.auditEvent({ kind: 'forgery-rejected', channel: 'command', keyId: event.keyId, counter: event.counter ?? 0 });
    } else if (event.reason === 'replay' || event.reason === 'stale') {
      this.counts.count('replayRejections');
      this.auditEvent({ kind: 'replay-rejected', channel: 'command', keyId: event.keyId, counter: event.counter ?? 0 });
    } else if (event.reason === 'key-revoked') {
      this.auditEvent({ kind: 'command-revoked', keyId: event.keyId, counter: event.counter ?? 0 });
    }
  }

  private onLinkEvent(event: TelemetryLinkEvent): void {
    switch (event.kind) {
      case 'connected':
        this.linkConnected = true;
        this.brokerReachedThisBoot = true;
        this.updates?.onConnected(this.hal.clock.ticks());
        break;
      case 'closed':
      case 'dead':
      case 'server-disconnect':
      case 'backoff':
      case 'connecting':
        this.linkConnected = false;
        break;
      case 'receipt-refused':
        this.counts.count('forgeryRejections');
        this.auditEvent({ kind: 'forgery-rejected', channel: 'telemetry', keyId: this.config.keyId, counter: 0 });
        break;
      case 'dropped-unreceipted':
        // The gate's drop policy released a record without a receipt: `total` counts these drops in this boot.
        this.auditEvent({ kind: 'records-dropped', store: 'outbox', count: 1, total: Math.min(0xffffffff, this.counts.count('unreceiptedDrops')) });
        break;
      default:
        break;
    }
  }

  /** A message on a subscribed device topic (not the receipt topic): queued for the scheduler, never handled inside the socket callback. */
  private onLinkMessage(topic: string, payload: Uint8Array): void {
    const channel =
      topic === this.commandTopic ? 'command' : topic === this.updateTopic && this.updates !== undefined ? 'update' : topic === this.revocationTopic && this.config.revocationKey !== undefined ? 'revocation' : undefined;
    if (channel === undefined) return;
    if (this.inbox.push(channel, payload)) return;
    // Full: dropped and counted. A log line and an audit entry (records-dropped, store inbox) at the 1st, 2nd, 4th, 8th … drop of the boot, so a flood floods neither.
    const dropped = this.inbox.dropped();
    if ((dropped & (dropped - 1)) === 0) {
      this.hal.log.write('warn', 'runtime', 'inbox full: message dropped', { channel, dropped, bytes: payload.length });
      this.auditEvent({ kind: 'records-dropped', store: 'inbox', count: Math.min(dropped - this.lastInboxAudit, 0xffffffff), total: Math.min(dropped, 0xffffffff) });
      this.lastInboxAudit = dropped;
    }
  }

  /**
   * The scheduler's turn: the messages queued now, oldest first, to their
   * handlers (a command is answered in telemetry; the last update chunk
   * restarts the device, and the rest wait for the next boot's link: the
   * broker redelivers what it did not see acknowledged).
   */
  private handleInboxMessages(now: number): void {
    for (let n = this.inbox.length; n > 0; n--) {
      const message = this.inbox.shift();
      if (message === undefined) return;
      if (message.channel === 'command') this.answerCommand(message.payload);
      else if (message.channel === 'revocation') this.onRevocationList(message.payload);
      else this.updates?.onMessage(message.payload, now);
    }
  }

  // ------------------------------------------------------------ safe mode

  private enterSafeMode(cause: SafeModeEntryCause): void {
    let outcome: string;
    try {
      outcome = this.safe.enter(cause);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      // The log refused the write: this boot is in safe mode all the same (RAM), the next re-detects or reads unreadable.
      outcome = 'entered';
      this.hal.log.write('error', 'runtime', 'safe-mode state not written', { error: error.message });
    }
    if (outcome === 'entered') {
      this.hal.log.write('warn', 'runtime', 'safe mode entered', { cause });
      this.auditEvent({ kind: 'safe-mode-entered', reason: cause });
    }
  }

  /** Causes found in this boot that still stand (a leave is refused while any does). */
  private standingCauses(): string[] {
    const causes: string[] = [];
    for (const f of this.failures) if (failureRow(f.code).safeMode !== undefined) causes.push(f.code);
    if (this.clockManipulated) causes.push('clock');
    if (this.deviceRevoked) causes.push('revoked');
    return causes;
  }

  // ------------------------------------------------------------ host API

  private advance(now: number): number {
    const t = now >>> 0;
    this.counts.addUptime(elapsedMs(this.lastTick, t));
    this.lastTick = t;
    return t;
  }

  service(now: number = this.hal.clock.ticks()): void {
    this.scheduler.service(this.advance(now));
  }

  nextDueMs(now: number = this.hal.clock.ticks()): number | undefined {
    return this.scheduler.nextDueMs(now >>> 0);
  }

  append(reading: Uint8Array): AppendOutcome {
    if (!(reading instanceof Uint8Array)) throw new TypeError('a reading is a Uint8Array');
    const payload = new Uint8Array(reading.length + 1);
    payload[0] = RECORD_TYPES.reading;
    payload.set(reading, 1);
    return this.appendPayload(payload);
  }

  private appendPayload(payload: Uint8Array): AppendOutcome {
    const link = this.link;
    if (link === undefined) return { accepted: false, reason: 'link-unavailable' };
    // A key rotation committed in this boot: nothing more is sealed with the old key (key-rotation.md).
    if (this.keyRotation?.sealingStopped === true) return { accepted: false, reason: 'link-unavailable' };
    let outcome: AppendOutcome;
    try {
      const record = link.append(payload);
      outcome = { accepted: true, counter: record.counter, seq: record.seq };
    } catch (error) {
      if (error instanceof RangeError) outcome = { accepted: false, reason: 'too-large' };
      else if (error instanceof StorageError) outcome = { accepted: false, reason: error.code === 'full' ? 'full' : 'storage' };
      else throw error;
    }
    this.checkDrops();
    return outcome;
  }

  /** Records that left the outbox unacknowledged since the last look: audited. */
  private checkDrops(): void {
    const outbox = this.outbox;
    if (outbox === undefined) return;
    const dropped = outbox.stats().dropped;
    if (dropped > this.lastDropped) {
      const count = dropped - this.lastDropped;
      this.lastDropped = dropped;
      this.auditEvent({ kind: 'records-dropped', store: 'outbox', count: Math.min(count, 0xffffffff), total: Math.min(dropped, 0xffffffff) });
    }
  }

  handleCommand(envelope: Uint8Array): CommandOutcome {
    const processor = this.commands;
    if (processor === undefined) return { result: { status: 'unavailable', reason: this.replay === undefined ? 'replay-unreadable' : 'journal-missing' }, mode: 'unchanged' };
    const result = processor.handle(envelope, this.safe.active ? 'safe' : 'normal');
    if (result.status === 'accepted' && result.command === 'roll-back-update') return { result, mode: 'unchanged', rollBack: this.commandedRollBack(result.parameters.version) };
    if (result.status === 'accepted' && result.kind === 'key') return { result, mode: 'unchanged', rotation: this.keyCommand(result.command, result.parameters) };
    if (result.status !== 'accepted' || result.kind !== 'mode') return { result, mode: 'unchanged' };
    if (result.command === 'enter-safe-mode') {
      const was = this.safe.active;
      this.enterSafeMode('command');
      return { result, mode: was ? 'unchanged' : 'entered' };
    }
    if (result.command === 'leave-safe-mode') {
      const left = this.leaveSafeMode('command');
      return left.detail === undefined ? { result, mode: left.mode } : { result, mode: left.mode, detail: left.detail };
    }
    if (result.command === 'quarantine') return { result, mode: this.quarantine() ? 'entered' : 'unchanged' };
    if (result.command === 'leave-quarantine') {
      if (!this.safe.active || this.safe.status().cause !== 'quarantine') return { result, mode: 'unchanged', detail: 'not quarantined' };
      const left = this.leaveSafeMode('command', true);
      return left.detail === undefined ? { result, mode: left.mode } : { result, mode: left.mode, detail: left.detail };
    }
    return { result, mode: 'unchanged' };
  }

  /** A verified roll-back-update of `version`: only while that version runs; the update agent's rule decides the rest. */
  private commandedRollBack(version: number): CommandRollBack {
    const running = this.agent?.runningVersion();
    const refused = (outcome: CommandRollBack, imageVersion: number | null): CommandRollBack => {
      this.auditEvent({ kind: 'rollback-impossible', imageVersion, reason: outcome });
      return outcome;
    };
    if (this.agent === undefined) return refused('no-update-agent', version);
    if (running !== version) return refused('not-running', version);
    return this.rollBack('commanded').ok ? 'rolling-back' : 'rollback-impossible';
  }

  /** A verified quarantine: safe mode with cause quarantine (persisted); true when the state changed. */
  private quarantine(): boolean {
    let outcome: string;
    try {
      outcome = this.safe.quarantine();
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      outcome = 'entered';
      this.hal.log.write('error', 'runtime', 'safe-mode state not written', { error: error.message });
    }
    if (outcome !== 'entered') return false;
    this.hal.log.write('warn', 'runtime', 'quarantined');
    this.auditEvent({ kind: 'safe-mode-entered', reason: 'quarantine' });
    return true;
  }

  /** Rows 7, 8, 11, 12 of the state table (docs/spec/safe-mode.md), for a verified leave or the unlocked console's `safe-mode off`. */
  private leaveSafeMode(cause: SafeModeLeaveCause, leavingQuarantine = false): { mode: 'unchanged' | 'left' | 'leave-refused'; detail?: string } {
    if (!this.safe.active) return { mode: 'unchanged' };
    if (!leavingQuarantine && this.safe.status().cause === 'quarantine') {
      this.hal.log.write('warn', 'runtime', 'leave-safe-mode refused: quarantined', { by: cause });
      return { mode: 'leave-refused', detail: 'quarantined: only a signed leave-quarantine leaves' };
    }
    const standing = this.standingCauses();
    if (standing.length > 0) {
      const detail = `causes found in this boot still stand: ${standing.join(', ')}`;
      this.hal.log.write('warn', 'runtime', 'leave-safe-mode refused', { standing: standing.join(','), by: cause });
      return { mode: 'leave-refused', detail };
    }
    try {
      this.safe.leave(cause);
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      // The log refused the write (or the format of an unreadable partition failed): still safe, nothing left.
      this.hal.log.write('error', 'runtime', 'safe-mode state not written', { error: error.message });
      return { mode: 'leave-refused', detail: `the safe-mode state cannot be written: ${error.message}` };
    }
    this.auditEvent({ kind: 'safe-mode-left', reason: leavingQuarantine ? 'leave-quarantine' : cause });
    return { mode: 'left' };
  }

  answerCommand(envelope: Uint8Array): CommandOutcome {
    if (!(envelope instanceof Uint8Array)) throw new TypeError('a command envelope is a Uint8Array');
    const outcome = this.handleCommand(envelope);
    const r = outcome.result;
    // An envelope that does not open is audited (forgery-rejected) but not answered: whoever sent it is not known to be
    // the cloud, and an answer per forged message would let anyone make the device write flash at the rate it can publish.
    if (r.status === 'refused' && r.reason === 'unauthenticated') return outcome;
    const hash = this.hal.crypto.createSha256();
    hash.update(envelope);
    const digest = hash.digest().slice(0, ENVELOPE_DIGEST_PREFIX);
    const reply = encodeCommandReply({
      status: r.status,
      reason: r.status === 'refused' ? r.reason : r.status === 'unavailable' ? (r.reason as UnavailableReason) : null,
      mode: outcome.mode,
      counter: r.status === 'unavailable' ? 0 : (r.counter ?? 0),
      envelopeDigest: digest,
    });
    const appended = this.appendPayload(reply);
    if (appended.accepted) this.counts.count('commandReplies');
    else this.hal.log.write('warn', 'runtime', 'command reply not appended', { reason: appended.reason });
    return outcome;
  }

  noteSignedTime(wallMs: number, now: number = this.hal.clock.ticks()): void {
    if (!Number.isSafeInteger(wallMs) || wallMs < 0) throw new RangeError(`wallMs must be a non-negative safe integer, got ${wallMs}`);
    this.advance(now);
    const base = this.clockBase;
    if (base === undefined) {
      this.clockBase = { wallMs, monoMs: this.counts.uptimeMs };
      return;
    }
    const deltaMs = wallMs - base.wallMs - (this.counts.uptimeMs - base.monoMs);
    const magnitude = Math.abs(deltaMs);
    if (magnitude <= (this.config.clockJumpBoundMs ?? DEFAULTS.clockJumpBoundMs)) return;
    this.counts.count('clockJumps');
    this.auditEvent({ kind: 'clock-jump', deltaMs, wallMs });
    // Re-anchor: the next comparison measures drift from this message on.
    this.clockBase = { wallMs, monoMs: this.counts.uptimeMs };
    if (magnitude > (this.config.clockManipulationBoundMs ?? DEFAULTS.clockManipulationBoundMs)) {
      this.clockManipulated = true;
      this.enterSafeMode('clock');
    }
  }

  // ------------------------------------------------------------ operator actions (the serial console)

  slots(): readonly [RuntimeSlotView, RuntimeSlotView] {
    const otadata = this.hal.partition(PARTITION_LABELS.otadata);
    let states: readonly [string | null, string | null] = [null, null];
    if (otadata !== undefined) {
      try {
        const readings = readOtadata(otadata);
        states = [stateOfSlot(readings, 0) ?? 'none', stateOfSlot(readings, 1) ?? 'none'];
      } catch (error) {
        if (!(error instanceof OtadataError) && !(error instanceof StorageError)) throw error;
        states = ['unreadable', 'unreadable'];
      }
    }
    const running = this.runningSlot();
    const chip = this.config.update?.chip;
    const view = (slot: SlotIndex): RuntimeSlotView => {
      const flash = this.hal.partition(slot === 0 ? PARTITION_LABELS.ota0 : PARTITION_LABELS.ota1);
      let secureVersion: number | null = null;
      let imageVersion: number | null = null;
      let verifies: boolean | null = null;
      if (flash !== undefined) {
        const reading = readEspAppDesc(flash);
        if (reading.kind === 'desc') {
          secureVersion = reading.desc.secureVersion;
          imageVersion = imageVersionOf(reading.desc) ?? null;
        }
        // The agent's rollback rule checks images so (checksum, app description; the appended hash is not required of the factory image).
        if (chip !== undefined) verifies = reading.kind === 'desc' && verifyEspAppImage(flash, { chip, requireAppDesc: true, requireHash: false }, () => this.hal.crypto.createSha256()).ok;
      }
      return Object.freeze({ slot, running: running === slot, state: states[slot], verifies, secureVersion, imageVersion });
    };
    return Object.freeze([view(0), view(1)]) as readonly [RuntimeSlotView, RuntimeSlotView];
  }

  confirmTrial(): RuntimeActionResult {
    const trial = this.trial;
    if (trial === undefined || this.trialState !== 'running') {
      return { ok: false, code: 'not-in-trial', message: `no trial boot is running (trial: ${this.trialState}): nothing to confirm` };
    }
    const failed: string[] = [];
    const pending: string[] = [];
    for (const check of this.checks) {
      const s = check.poll();
      if (s.state === 'failed') failed.push(`${check.name}: ${s.reason}`);
      else if (s.state === 'pending') pending.push(check.name);
    }
    if (failed.length > 0) return { ok: false, code: 'checks-failed', message: `the trial's checks failed (${failed.join('; ')}): it rolls back at its next step` };
    if (pending.length > 0) return { ok: false, code: 'checks-pending', message: `the trial's checks have not passed yet: ${pending.join(', ')}` };
    const state = this.deferring(() => this.stepTrial());
    if (state === 'committed') return { ok: true, fields: { slot: this.runningSlot(), state: 'valid', version: this.agent?.runningVersion() ?? null } };
    return { ok: false, code: state === 'deferred' ? 'rolled-back' : state, message: `the trial ended ${state === 'deferred' ? 'rolled back (restart scheduled)' : state} instead of committing` };
  }

  rollBack(reason: string): RuntimeActionResult {
    const agent = this.agent;
    if (agent === undefined) return { ok: false, code: 'no-update-agent', message: 'no update agent on this device (no update configuration, or its partitions are missing)' };
    const from = this.runningSlot();
    const outcome = this.deferring(() => agent.rollBack(auditToken(reason)));
    if (outcome !== 'deferred') return { ok: false, code: 'rollback-impossible', message: 'no other slot holds a valid image that verifies at or above the security floor' };
    // The trial (if one ran) is over: its steps stop, its watchdog with them.
    if (this.trial !== undefined) {
      this.trial = undefined;
      this.trialState = 'rolled-back';
      this.scheduler.setEnabled('trial', false, this.lastTick);
      this.hal.watchdog.disarm();
    }
    return { ok: true, fields: { slot: from, state: 'invalid', rebooting: true } };
  }

  setSafeMode(on: boolean, cause: 'console'): RuntimeActionResult {
    if (cause !== 'console') throw new TypeError(`unknown safe-mode source ${String(cause)}`);
    if (on) {
      const was = this.safe.active;
      this.enterSafeMode('console');
      return { ok: true, fields: { 'safe-mode': true, changed: !was, cause: this.safe.status().cause } };
    }
    const left = this.leaveSafeMode('console');
    if (left.mode === 'leave-refused') return { ok: false, code: 'leave-refused', message: left.detail ?? 'safe mode not left' };
    return { ok: true, fields: { 'safe-mode': this.safe.active, changed: left.mode === 'left' } };
  }

  requestRestart(reason: string): void {
    if (this.restartReason !== undefined) return;
    this.restartReason = reason;
    this.hal.log.write('warn', 'runtime', 'restart requested', { reason });
  }

  restartPending(): string | undefined {
    return this.restartReason;
  }

  private restartNow(): void {
    const reason = this.restartReason ?? 'requested';
    this.hal.system.restart(reason);
  }

  counterValues(): { next(): number } {
    return {
      next: (): number => {
        const counter = this.counter;
        if (counter === undefined) {
          const failure = this.failures.find((f) => f.code === 'counter-unreadable');
          throw new StorageError(storageCode(failure?.cause), `no counter: ${failure?.message ?? 'not opened'}`);
        }
        return counter.next();
      },
    };
  }

  appendAudit(event: AuditEvent): void {
    const audit = this.audit;
    if (audit === undefined) {
      this.counts.count('auditLost');
      const failure = this.failures.find((f) => f.code === 'audit-unreadable');
      throw new StorageError(storageCode(failure?.cause), `no audit log: ${failure?.message ?? 'not opened'}`);
    }
    try {
      audit.append(event);
    } catch (error) {
      if (error instanceof StorageError) this.counts.count('auditLost');
      throw error;
    }
  }

  /** Run `action` with the update agent's restarts scheduled instead of done; 'deferred' when it restarted. */
  private deferring<T>(action: () => T): T | 'deferred' {
    this.deferRestarts = true;
    try {
      return action();
    } catch (error) {
      if (error instanceof RestartDeferred) return 'deferred';
      throw error;
    } finally {
      this.deferRestarts = false;
    }
  }

  // ------------------------------------------------------------ periodic work

  private publishHealth(now: number): void {
    this.advance(now);
    if (this.link === undefined) return;
    const outcome = this.appendPayload(encodeHealthRecord(this.healthRecord(now)));
    if (outcome.accepted) this.counts.count('healthRecords');
  }

  /** Unpublished audit entries go to the outbox, one record each; an entry is acknowledged once its record is durable there. */
  private publishAudit(): void {
    const audit = this.audit;
    if (audit === undefined || this.link === undefined) return;
    const last = audit.stats().lastCounter;
    if (last <= this.lastPublished) return;
    const batch = this.config.auditPublishBatch ?? DEFAULTS.auditPublishBatch;
    let read: ReturnType<AuditLog['read']>;
    try {
      read = audit.read(this.lastPublished, batch);
    } catch (error) {
      // An entry of a newer format in the ring (never stepped over): nothing is published, the log says why.
      if (!(error instanceof StorageError)) throw error;
      this.hal.log.write('error', 'runtime', 'audit entries not published', { error: error.message });
      return;
    }
    for (const record of read.records) {
      const payload = new Uint8Array(record.bytes.length + 1);
      payload[0] = RECORD_TYPES.audit;
      payload.set(record.bytes, 1);
      const outcome = this.appendPayload(payload);
      if (!outcome.accepted) return;
      this.lastPublished = record.counter;
      this.counts.count('auditPublished');
      audit.ack(record.counter);
    }
    if (read.records.length === 0) this.lastPublished = last;
  }

  // ------------------------------------------------------------ read-only views

  private deviceKeys(): DeviceKeys {
    if (this.keys === undefined) {
      const sealing = this.keyRotation?.sealingKey() ?? { keyId: this.config.keyId, secret: this.config.deviceSecret };
      this.keys = deriveDeviceKeys(this.hal.crypto, sealing.secret, this.config.deviceId, sealing.keyId);
    }
    return this.keys;
  }

  /** The key store (hf_keys): a store that does not open is the boot failure keys-unreadable (the provisioning key seals, rotation refused). */
  private openKeyRotation(): void {
    const { hal, config } = this;
    const options = {
      crypto: hal.crypto,
      entropy: hal.entropy,
      deviceId: config.deviceId,
      provisioned: { keyId: config.keyId, secret: config.deviceSecret, seed: config.deviceKeySeed },
      authorityKey: config.commandKey.publicKey,
    };
    const flash = this.partition('keys', undefined);
    this.keyRotation = this.openStore('keys-unreadable', () => DeviceKeyRotation.open(options, flash)) ?? DeviceKeyRotation.provisioningOnly(options);
  }

  /** No record waits in the outbox, now or after a reboot (acknowledgements made durable first). */
  private outboxDrained(): boolean {
    const outbox = this.outbox;
    if (outbox === undefined) return true;
    if (outbox.stats().queued !== 0) return false;
    outbox.flush();
    return outbox.stats().unpersistedAcks === 0;
  }

  /** rotate-key / confirm-key-rotation (docs/spec/key-rotation.md, "On the device"). */
  private keyCommand(command: string, parameters: Readonly<Record<string, number>>): RotationAnswer {
    const rotation = this.keyRotation;
    const counter = this.counter;
    if (rotation === undefined || counter === undefined) return { state: 'refused', reason: 'unavailable', detail: 'no key store or no counter' };
    let answer: RotationAnswer;
    try {
      if (command === 'rotate-key') answer = rotation.begin(parameters.keyId, () => counter.next());
      else answer = rotation.commit(parameters.keyId, parameters.keyPrefix, () => this.outboxDrained(), () => counter.next());
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return { state: 'refused', reason: 'storage', detail: error.message };
    }
    if (answer.state === 'requested') {
      const payload = new Uint8Array(answer.request.length + 1);
      payload[0] = RECORD_TYPES.keyRotationRequest;
      payload.set(answer.request, 1);
      this.appendPayload(payload);
    } else if (answer.state === 'committed') {
      this.auditEvent({ kind: 'key-rotated', role: 'device', fromVersion: answer.fromKeyId, toVersion: answer.keyId });
      this.requestRestart('key-rotated');
    }
    return answer;
  }

  private runningSlot(): SlotIndex | null {
    return this.hal.bootControl?.runningSlot() ?? null;
  }

  private slotStates(): [SlotStateReading, SlotStateReading] {
    const otadata = this.hal.partition(PARTITION_LABELS.otadata);
    if (otadata === undefined) return [null, null];
    try {
      const readings = readOtadata(otadata);
      return [stateOfSlot(readings, 0) ?? null, stateOfSlot(readings, 1) ?? null];
    } catch {
      return [null, null];
    }
  }

  private bootFailureBits(): number {
    let bits = 0;
    for (const f of this.failures) bits |= failureBit(f.code);
    return bits >>> 0;
  }

  status(): RuntimeStatus {
    return Object.freeze({
      mode: this.safe.active ? 'safe' : 'normal',
      safeMode: this.safe.status(),
      resetReason: this.resetReason,
      failures: Object.freeze(this.failures.slice()),
      bootFailureBits: this.bootFailureBits(),
      uptimeMs: this.counts.uptimeMs,
      runningSlot: this.runningSlot(),
      slotStates: this.slotStates(),
      imageVersion: this.agent?.runningVersion() ?? null,
      securityFloor: this.floor?.secureVersion ?? null,
      trial: this.trialState,
      linkConnected: this.linkConnected,
      replayRejections: this.counts.value('replayRejections'),
      forgeryRejections: this.counts.value('forgeryRejections'),
      clockJumps: this.counts.value('clockJumps'),
      auditLost: this.counts.value('auditLost'),
      healthRecords: this.counts.value('healthRecords'),
      auditPublished: this.counts.value('auditPublished'),
      commandReplies: this.counts.value('commandReplies'),
      inboxDropped: this.inbox.dropped(),
      revocation: this.revocationStatus(),
      keyId: this.deviceKeys().keyId,
      keyPending: this.keyRotation?.state()?.pending?.keyId ?? null,
    } satisfies RuntimeStatus);
  }

  healthRecord(now: number = this.hal.clock.ticks()): HealthRecord {
    this.advance(now);
    const o = this.outbox?.stats();
    return {
      safeMode: this.safe.active,
      trialRunning: this.trialState === 'running',
      linkConnected: this.linkConnected,
      commandsUnavailable: this.commands === undefined || !this.commands.journalAvailable,
      auditUnavailable: this.audit === undefined || this.counts.value('auditLost') > 0,
      clockJumpSeen: this.counts.value('clockJumps') > 0,
      safeModeCause: this.safe.status().code,
      resetReason: this.resetReason,
      runningSlot: this.runningSlot(),
      slotStates: this.slotStates(),
      imageVersion: this.agent?.runningVersion() ?? null,
      securityFloor: this.floor?.secureVersion ?? null,
      bootFailures: this.bootFailureBits(),
      counter: this.counter?.current() ?? 0,
      outboxQueued: o?.queued ?? 0,
      outboxDropped: o?.dropped ?? 0,
      outboxLost: o === undefined ? 0 : o.lost + o.corrupt,
      replayRejections: this.counts.value('replayRejections'),
      forgeryRejections: this.counts.value('forgeryRejections'),
      clockJumps: this.counts.value('clockJumps'),
      uptimeSeconds: Math.floor(this.counts.uptimeMs / 1000),
      auditLastCounter: this.audit?.stats().lastCounter ?? 0,
    };
  }

  counterStats(): CounterStats | undefined {
    return this.counter?.stats();
  }

  outboxStats(): OutboxStats | undefined {
    return this.outbox?.stats();
  }

  linkStats(): TelemetryLinkStats | undefined {
    return this.link?.stats();
  }

  auditStats(): AuditLogStats | undefined {
    return this.audit?.stats();
  }

  auditTail(count: number): readonly AuditRecord[] {
    const audit = this.audit;
    if (audit === undefined || count <= 0) return [];
    // Counters are not dense (the counter is shared with telemetry): read the ring and keep the tail.
    const all = audit.read(0).records;
    return all.slice(Math.max(0, all.length - count));
  }

  tasks(): TaskStats[] {
    return this.scheduler.stats();
  }

  updateStats(): MqttUpdatesStats | undefined {
    return this.updates?.stats();
  }

  inboxStats(): InboxStats {
    return this.inbox.stats();
  }
}

const STORAGE_CODES: readonly string[] = Object.freeze(['format-too-new', 'not-formatted', 'blank', 'damaged', 'too-many-keys', 'bad-geometry', 'full', 'exhausted']);

/** A boot failure's cause as a StorageError code (a missing partition has no geometry). */
export function storageCode(cause: string | undefined): StorageErrorCode {
  return cause !== undefined && STORAGE_CODES.includes(cause) ? (cause as StorageErrorCode) : 'bad-geometry';
}

/** A partition that reads as nothing (no safe-mode partition in the table): SafeModeStore.open reads it as unreadable. */
function unreadablePartition(): FlashPartition {
  const status = Object.freeze({ size: 0, blockLength: 4096, blocks: 0, writeAlign: 1, eraseValue: 0xff });
  return {
    status: () => status,
    read: () => {
      throw new StorageError('bad-geometry', 'no safe-mode partition');
    },
    write: () => {
      throw new StorageError('bad-geometry', 'no safe-mode partition');
    },
    eraseBlock: () => {
      throw new StorageError('bad-geometry', 'no safe-mode partition');
    },
  };
}
