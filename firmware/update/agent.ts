/**
 * The update agent (docs/design/update.md): check a signed manifest before
 * writing anything, stage the image into the inactive slot, select it for
 * one trial boot, and on the trial boot confirm it only after every health
 * check passed under the watchdog, raising the security floor only after
 * the VALID state is durable. A failed check rolls back; a hang is caught by
 * the watchdog and the bootloader rolls back by itself.
 */
import type { Crypto } from '../hal/crypto.ts';
import type { FlashPartition } from '../hal/flash.ts';
import type { MonotonicClock } from '../hal/clock.ts';
import type { System } from '../hal/system.ts';
import type { Watchdog } from '../hal/watchdog.ts';
import type { SlotIndex } from '../hal/boot-control.ts';
import { elapsedMs } from '../base/ticks.ts';
import { checkManifest, type ImageManifest } from './manifest.ts';
import { applyRootChain, type TrustedRoot } from './root.ts';
import type { TrustStore } from './trust-store.ts';
import { StagingProgress, type StagingSession } from './staging-progress.ts';
import { imageTag, stageImage, type ImageSource, type StagingCursor } from './staging.ts';
import { activeCopy, markInvalid, markValid, OtadataError, readOtadata, setBootSlot, slotForSeq, stateOfSlot, withSeqAndState, writeOtadataCopy } from './otadata.ts';
import { checkAppImage, imageVersionOf, readEspAppDesc, verifyEspAppImage, type EspChip } from './esp-app-image.ts';
import type { UpdateReason } from './errors.ts';
import { StorageError } from '../storage/errors.ts';
import type { AuditSink } from './audit.ts';
import type { HealthCheck } from './health.ts';

/** The anti-rollback floor (the ESP32's secure-version eFuse): it only goes up. */
export interface SecurityFloor {
  readonly secureVersion: number;
  raise(version: number): void;
}

/**
 * Why there is no root of trust to check manifests against: the trust
 * store's StorageError code ('format-too-new', 'not-formatted', …) or
 * 'not-provisioned' (the store holds no root). Never read as "no root yet,
 * accept anything" nor as "not provisioned" when the store said otherwise.
 */
export interface TrustUnavailable {
  readonly unavailable: string;
  readonly message: string;
}

/** The root of trust as loaded at boot, or why it could not be. */
export type TrustReading = TrustedRoot | TrustUnavailable;

/** Load the trusted root from `store`, turning its typed refusals into a TrustUnavailable. */
export function loadTrust(store: Pick<TrustStore, 'load'>): TrustReading {
  let root: TrustedRoot | undefined;
  try {
    root = store.load();
  } catch (error) {
    if (error instanceof StorageError) return { unavailable: error.code, message: error.message };
    throw error;
  }
  return root ?? { unavailable: 'not-provisioned', message: 'the trust store holds no root' };
}

export function isTrustUnavailable(trust: TrustReading): trust is TrustUnavailable {
  return typeof (trust as TrustUnavailable).unavailable === 'string';
}

export interface UpdateDeps {
  readonly otadata: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  /** The slot the bootloader started. */
  readonly runningSlot: SlotIndex;
  readonly progress: FlashPartition;
  readonly crypto: Crypto;
  /** The root of trust loaded at boot (`loadTrust`), or why there is none: then every offer is refused. */
  readonly trust: TrustReading;
  readonly floor: SecurityFloor;
  readonly boardId: string;
  /** The chip this firmware runs on: an image for another chip id is refused, as ESP-IDF's bootloader would. */
  readonly chip: EspChip;
  readonly watchdog: Watchdog;
  readonly clock: MonotonicClock;
  readonly system: System;
  readonly audit: AuditSink;
}

/**
 * Trial boots one image gets before the agent refuses it: a trial also ends
 * unconfirmed when the power fails during it, which is no fault of the image,
 * but an image that hangs must not be retried forever.
 */
export const MAX_TRIALS = 3;

/**
 * Why `install` returned (it restarts when it staged). 'pending': the
 * source has not the chunk at `next` yet; nothing is refused or audited,
 * call again with the same manifest once it has.
 */
export type InstallOutcome = { ok: false; reason: string; message: string; next?: { readonly offset: number; readonly length: number } };

/** Why the agent refuses every offer right now (the runtime reports it and goes to safe mode). */
export interface Blocked {
  readonly reason: Extract<UpdateReason, 'running-version-unknown' | 'trust-unavailable' | 'progress-unreadable'>;
  readonly message: string;
}

export interface TrialOptions {
  /** Watchdog timeout during the trial; fed only while the checks are within their deadlines. */
  watchdogTimeoutMs: number;
}

/**
 * 'rollback-impossible': a check failed but no other slot holds an image
 * that verifies at or above the anti-rollback floor (ESP-IDF's
 * `esp_ota_check_rollback_is_possible`): nothing was written, the device
 * keeps running the image, and the runtime must report it (safe mode).
 */
export type TrialState = 'running' | 'committed' | 'rolled-back' | 'rollback-impossible';

/** What a slot's esp_app_desc_t says, as the agent uses it. */
interface SlotImage {
  readonly secureVersion: number;
  /** esp_app_desc_t.version as holdfast's decimal image version; undefined when it is not one. */
  readonly imageVersion: number | undefined;
}

export class UpdateAgent {
  private trusted: TrustReading;
  /** This boot's running hash of a download fed chunk by chunk (RAM only). */
  private readonly cursor: StagingCursor = { tag: 0, chunk: 0, hash: undefined };
  /** The last manifest that passed checkManifest in this boot, and what it was checked against. */
  private verified: { readonly bytes: Uint8Array; readonly root: TrustedRoot; readonly floor: number; readonly running: number; readonly manifest: ImageManifest } | undefined;

  constructor(private readonly deps: UpdateDeps) {
    this.trusted = deps.trust;
  }

  /** The root of trust manifests are checked against now, or why there is none. */
  get trustedRoot(): TrustReading {
    return this.trusted;
  }

  /**
   * Apply root rotations N→N+1→… (each signed by a threshold of the old and
   * of the new root keys) and persist the newest accepted root before using
   * it. A refused link stops the chain; the roots before it still count.
   */
  applyRoots(chain: readonly Uint8Array[], store: TrustStore): boolean {
    const trusted = this.trusted;
    if (isTrustUnavailable(trusted)) {
      this.deps.audit.emit({ kind: 'root-rejected', reason: 'trust-unavailable', message: `no trusted root to check a rotation against (${trusted.unavailable}): ${trusted.message}` });
      return false;
    }
    const from = trusted.version;
    const verdict = applyRootChain(this.deps.crypto, trusted, chain);
    if (verdict.root.version > from) {
      store.save(verdict.root);
      this.trusted = verdict.root;
      this.deps.audit.emit({ kind: 'root-rotated', fromVersion: from, toVersion: verdict.root.version });
    }
    if (!verdict.ok) this.deps.audit.emit({ kind: 'root-rejected', reason: verdict.reason, message: verdict.message });
    return verdict.ok;
  }

  /**
   * Version of the image running now, from its esp_app_desc_t; undefined
   * when the description does not read or its version string is not a
   * decimal u32 (never 0).
   */
  runningVersion(): number | undefined {
    return this.slotImage(this.deps.runningSlot)?.imageVersion;
  }

  /** The esp_app_desc_t facts of `slot` (its first 288 bytes only), or undefined. */
  private slotImage(slot: SlotIndex): SlotImage | undefined {
    const reading = readEspAppDesc(this.deps.slots[slot]);
    if (reading.kind !== 'desc') return undefined;
    return { secureVersion: reading.desc.secureVersion, imageVersion: imageVersionOf(reading.desc) };
  }

  /**
   * Why every offer is refused now, or undefined: the running version is
   * unknown (an unknown version must not pass the old-version check as 0),
   * there is no trusted root (the trust store said format-too-new, …), or
   * the staging progress log cannot be read (its trial count is unknown).
   */
  blockedBy(): Blocked | undefined {
    const trusted = this.trusted;
    if (isTrustUnavailable(trusted)) {
      return { reason: 'trust-unavailable', message: `no trusted root (${trusted.unavailable}): ${trusted.message}` };
    }
    if (this.runningVersion() === undefined) {
      return { reason: 'running-version-unknown', message: `the app description of running slot ${this.deps.runningSlot} does not read as a holdfast version (esp_app_desc_t.version, decimal): offers are refused until the running version is known` };
    }
    const progress = this.openProgress();
    if (progress instanceof StorageError) return { reason: 'progress-unreadable', message: `staging progress log (${progress.code}): ${progress.message}` };
    return undefined;
  }

  /**
   * Check `manifestBytes`, stage the image from `source` into the inactive
   * slot (resuming an interrupted download of the same image), select it
   * for a trial and restart. Returns only when it refuses; nothing is
   * written to the running slot in any case.
   */
  install(manifestBytes: Uint8Array, source: ImageSource): InstallOutcome {
    const { deps } = this;
    const blocked = this.blockedBy();
    if (blocked !== undefined) return this.refuse(blocked.reason, blocked.message);
    const trusted = this.trusted as TrustedRoot;
    const runningVersion = this.runningVersion() as number;
    const target = (1 - deps.runningSlot) as SlotIndex;
    const slot = deps.slots[target];
    const floor = deps.floor.secureVersion;
    const cached = this.verified;
    let manifest: ImageManifest;
    if (cached !== undefined && cached.root === trusted && cached.floor === floor && cached.running === runningVersion && sameBytes(cached.bytes, manifestBytes)) {
      // The same bytes against the same root, floor and running version: the same verdict (one Ed25519 check per offer and boot, not per chunk).
      manifest = cached.manifest;
    } else {
      this.verified = undefined;
      const verdict = checkManifest(deps.crypto, trusted, manifestBytes, {
        boardId: deps.boardId,
        runningVersion,
        securityFloor: floor,
        slotSize: slot.status().size,
      });
      if (!verdict.ok) return this.refuse(verdict.reason, verdict.message);
      manifest = verdict.manifest;
      this.verified = { bytes: manifestBytes.slice(), root: trusted, floor, running: runningVersion, manifest };
    }
    const progress = StagingProgress.open(deps.progress);
    if (progress.session() === undefined && progress.unreadable > 0) {
      // No session reads, yet entries were written: a cut during a new session's start, or damage that destroyed
      // a session whose trial count is now lost. Either way it is said, not silently read as "never staged".
      deps.audit.emit({ kind: 'store-unreadable', store: 'staging-progress', code: 'damaged', message: `${progress.unreadable} unreadable progress entries and no readable session: a trial count may have been lost` });
    }
    const session = progress.session();
    const trials = session?.tag === imageTag(manifest.imageDigest) ? session.trials : 0;
    if (session?.tag === imageTag(manifest.imageDigest) && session.suspect > 0) {
      // A cut never lowers the count (a torn TRIAL is appended again before selecting); damage to a durable TRIAL can.
      deps.audit.emit({ kind: 'store-unreadable', store: 'staging-progress', code: 'damaged', message: `${session.suspect} unreadable progress entries after trial ${session.trials}: the trial count may be low by as much` });
    }
    if (trials >= MAX_TRIALS && this.failedBefore(target, manifest.imageVersion)) {
      return this.refuse('rolled-back-before', `version ${manifest.imageVersion} failed ${trials} trial boots on this device: a newer version is needed`);
    }
    const staged = stageImage(
      { slot, progress, crypto: deps.crypto, watchdog: deps.watchdog, cursor: this.cursor },
      { tag: imageTag(manifest.imageDigest), length: manifest.imageLength, sha256: manifest.imageDigest },
      source,
    );
    if (!staged.ok && staged.reason === 'pending') return { ok: false, reason: 'pending', message: staged.message, next: { offset: staged.offset, length: staged.length } };
    if (!staged.ok) return this.refuse(staged.reason, staged.message);
    const image = this.checkStagedImage(slot, manifest);
    if (image !== undefined) return this.refuse(image.reason, image.message);
    progress.recordTrial();
    setBootSlot(deps.otadata, target);
    deps.audit.emit({ kind: 'update-staged', imageVersion: manifest.imageVersion, securityVersion: manifest.securityVersion, slot: target, resumedAtChunk: staged.resumedAtChunk });
    return deps.system.restart('update staged');
  }

  /**
   * On boot: if the running image has not been confirmed, start its trial.
   * "Confirmed" is the otadata state VALID *and*, for the image this agent
   * staged last, its own CONFIRMED record: a torn otadata write can turn NEW
   * into VALID under an intact CRC (the CRC covers only the seq), and then
   * the bootloader boots the untried image as committed; the agent notices
   * (`unconfirmed-valid`) and runs it as a trial. Returns undefined when the
   * running image is confirmed.
   */
  beginTrial(checks: readonly HealthCheck[], options: TrialOptions): TrialBoot | undefined {
    const { deps } = this;
    const readings = readOtadata(deps.otadata);
    const state = stateOfSlot(readings, deps.runningSlot);
    if (state === 'valid' || state === undefined) {
      // VALID, or no copy for the running slot at all (the no-active rows): trusted unless it is the staged image never confirmed.
      const unconfirmed = this.unconfirmedStagedImage();
      if (unconfirmed === undefined) {
        this.reportAbortedTrial();
        return undefined;
      }
      deps.audit.emit({ kind: 'unconfirmed-valid', imageVersion: unconfirmed.imageVersion, slot: deps.runningSlot });
    }
    if (state !== 'pending-verify') this.markPendingVerify();
    return new TrialBoot(this, checks, options);
  }

  /**
   * @internal Called by TrialBoot when every check passed: the agent's own
   * CONFIRMED record first (so VALID never stands without it), then VALID,
   * then the floor. A cut after CONFIRMED and before VALID leaves the copy
   * PENDING_VERIFY: the bootloader aborts it and the update is offered again
   * (its next TRIAL makes the session unconfirmed again).
   */
  commit(): void {
    const { deps } = this;
    const readings = readOtadata(deps.otadata);
    const active = activeCopy(readings);
    // Confirm only what is running: after a fallback the active copy may name the other slot.
    if (active === undefined || slotForSeq(readings[active].seq) !== deps.runningSlot) {
      // No copy at all for the running slot (booted by the no-active rows): nothing can be marked
      // VALID, as in ESP-IDF; the checks passed, so the agent's record says so and the floor stays.
      if (stateOfSlot(readings, deps.runningSlot) === undefined) this.recordConfirmation();
      return;
    }
    this.recordConfirmation();
    markValid(deps.otadata);
    const image = this.slotImage(deps.runningSlot);
    if (image !== undefined) {
      deps.floor.raise(image.secureVersion);
      deps.audit.emit({ kind: 'update-committed', imageVersion: image.imageVersion ?? 0, securityVersion: image.secureVersion, slot: deps.runningSlot });
    }
  }

  /**
   * @internal Called by TrialBoot when a check failed: INVALID, then back to
   * the previous slot. As ESP-IDF's `esp_ota_mark_app_invalid_rollback`, only
   * when `esp_ota_check_rollback_is_possible` holds: the other copy is valid
   * and its slot holds an image that verifies with a secure version at or
   * above the anti-rollback floor. Otherwise nothing is written, the refusal
   * is reported, and 'rollback-impossible' is returned (no restart).
   */
  rollBack(reason: string): 'rollback-impossible' {
    const { deps } = this;
    try {
      markInvalid(deps.otadata, (slot) => this.canRollBackTo(slot as SlotIndex));
    } catch (error) {
      if (!(error instanceof OtadataError) || (error.code !== 'rollback-impossible' && error.code !== 'no-active-entry')) throw error;
      deps.audit.emit({ kind: 'rollback-impossible', imageVersion: this.runningVersion(), reason, message: error.message });
      return 'rollback-impossible';
    }
    deps.audit.emit({ kind: 'update-rolled-back', imageVersion: this.runningVersion() ?? 0, reason });
    return deps.system.restart(`rollback: ${reason}`);
  }

  /**
   * `esp_ota_check_rollback_is_possible` for one slot: its image passes
   * `esp_image_verify` (as the bootloader with anti-rollback checks it) and
   * its secure version is not below the floor.
   */
  private canRollBackTo(slot: SlotIndex): boolean {
    const image = this.slotImage(slot);
    if (image === undefined || image.secureVersion < this.deps.floor.secureVersion) return false;
    return verifyEspAppImage(this.deps.slots[slot], { chip: this.deps.chip, requireAppDesc: true, requireHash: false }, this.deps.crypto.createSha256).ok;
  }

  /**
   * The running image reads VALID: is it the image this agent staged last,
   * selected for a trial and never confirmed? The staged image's version is
   * above the one that was running when it was staged, so it is the newer
   * of the two slots (cheap test); then the running slot must hash to the
   * session's tag (exact, and only reached in this rare case). An unreadable
   * progress log is reported and treated as "confirmed": a trial whose
   * confirmation cannot be recorded would repeat on every boot.
   */
  private unconfirmedStagedImage(): { readonly imageVersion: number } | undefined {
    const { deps } = this;
    const progress = this.openProgress();
    if (progress instanceof StorageError) {
      deps.audit.emit({ kind: 'store-unreadable', store: 'staging-progress', code: progress.code, message: progress.message });
      return undefined;
    }
    const session = progress.session();
    if (session === undefined || !session.complete || session.trials === 0 || session.confirmed) return undefined;
    const running = this.slotImage(deps.runningSlot)?.imageVersion;
    if (running === undefined) return undefined;
    const other = this.slotImage((1 - deps.runningSlot) as SlotIndex)?.imageVersion;
    if (other !== undefined && other >= running) return undefined;
    return this.slotHoldsSession(deps.runningSlot, session) ? { imageVersion: running } : undefined;
  }

  /** On a commit: record CONFIRMED for the session if the running slot holds its image. */
  private recordConfirmation(): void {
    const progress = this.openProgress();
    if (progress instanceof StorageError) {
      this.deps.audit.emit({ kind: 'store-unreadable', store: 'staging-progress', code: progress.code, message: progress.message });
      return;
    }
    const session = progress.session();
    if (session === undefined || !session.complete || session.confirmed) return;
    if (this.slotHoldsSession(this.deps.runningSlot, session)) progress.recordConfirmed();
  }

  /** The first `imageLength` bytes of `slot` hash to the session's tag. */
  private slotHoldsSession(slot: SlotIndex, session: StagingSession): boolean {
    const flash = this.deps.slots[slot];
    if (session.imageLength > flash.status().size) return false;
    const hash = this.deps.crypto.createSha256();
    const buffer = new Uint8Array(1024);
    for (let offset = 0; offset < session.imageLength; offset += buffer.length) {
      const part = buffer.subarray(0, Math.min(buffer.length, session.imageLength - offset));
      flash.read(offset, part);
      hash.update(part);
    }
    return imageTag(hash.digest()) === session.tag;
  }

  /** The progress log, or the StorageError that refuses it. */
  private openProgress(): StagingProgress | StorageError {
    try {
      return StagingProgress.open(this.deps.progress);
    } catch (error) {
      if (error instanceof StorageError) return error;
      throw error;
    }
  }

  /**
   * Booted back on the old image because the bootloader aborted a trial (a
   * hang caught by the watchdog, or power lost during it): report it once,
   * recording the report in the progress log so a reboot does not repeat it.
   */
  private reportAbortedTrial(): void {
    const { deps } = this;
    const other = (1 - deps.runningSlot) as SlotIndex;
    if (stateOfSlot(readOtadata(deps.otadata), other) !== 'aborted') return;
    const progress = this.openProgress();
    if (progress instanceof StorageError) {
      deps.audit.emit({ kind: 'store-unreadable', store: 'staging-progress', code: progress.code, message: progress.message });
      return;
    }
    const session = progress.session();
    if (session === undefined || !session.complete || session.reported >= session.trials) return;
    deps.audit.emit({ kind: 'update-rolled-back', imageVersion: this.slotImage(other)?.imageVersion ?? 0, reason: 'trial aborted by the bootloader: not confirmed (watchdog reset or power lost)' });
    progress.recordReported(session.trials);
  }

  /** @internal */
  get hal(): Pick<UpdateDeps, 'watchdog' | 'clock' | 'audit' | 'runningSlot'> {
    return this.deps;
  }

  /**
   * A running entry whose state reads as neither PENDING_VERIFY nor a VALID
   * this agent confirmed (a torn otadata erase or program can leave any
   * state under an intact CRC) would be booted again without the
   * bootloader's abort: mark it PENDING_VERIFY so a hang during this trial
   * still rolls back.
   */
  private markPendingVerify(): void {
    const readings = readOtadata(this.deps.otadata);
    const active = activeCopy(readings);
    if (active === undefined || slotForSeq(readings[active].seq) !== this.deps.runningSlot) return;
    writeOtadataCopy(this.deps.otadata, active, withSeqAndState(readings[active], readings[active].seq, 'pending-verify'));
  }

  /** The inactive slot holds this version and its trial was aborted or rejected. */
  private failedBefore(slot: SlotIndex, imageVersion: number): boolean {
    const state = stateOfSlot(readOtadata(this.deps.otadata), slot);
    if (state !== 'aborted' && state !== 'invalid') return false;
    return this.slotImage(slot)?.imageVersion === imageVersion;
  }

  /**
   * Before the bootloader is pointed at it, the staged slot must pass
   * ESP-IDF's image checks for this chip (holdfastRules: app description and
   * appended hash required) and its esp_app_desc_t must carry the signed
   * manifest's version and security version.
   */
  private checkStagedImage(slot: FlashPartition, manifest: ImageManifest): { reason: string; message: string } | undefined {
    const verdict = checkAppImage(slot, this.deps.chip, manifest, this.deps.crypto.createSha256);
    if (!verdict.ok) return { reason: 'tampered', message: `the staged image disagrees with the signed manifest (version ${manifest.imageVersion}, security version ${manifest.securityVersion}): ${verdict.message}` };
    return undefined;
  }

  private refuse(reason: string, message: string): InstallOutcome {
    this.deps.audit.emit({ kind: 'update-rejected', reason, message });
    return { ok: false, reason, message };
  }
}

/**
 * One trial boot: the watchdog is armed at the start and fed on each step
 * only while every pending check is within its deadline. All passed →
 * commit; one failed or late → roll back. A firmware hang stops the steps,
 * the watchdog resets the device, and the bootloader aborts the trial.
 */
export class TrialBoot {
  private readonly started: number;
  private readonly passed = new Set<string>();
  private state: TrialState = 'running';

  constructor(private readonly agent: UpdateAgent, private readonly checks: readonly HealthCheck[], options: TrialOptions) {
    const { watchdog, clock, audit, runningSlot } = agent.hal;
    watchdog.arm(options.watchdogTimeoutMs);
    this.started = clock.ticks();
    audit.emit({ kind: 'trial-started', imageVersion: agent.runningVersion(), slot: runningSlot });
  }

  /** Poll the checks once; returns the trial's state. */
  step(): TrialState {
    if (this.state !== 'running') return this.state;
    const { watchdog, clock } = this.agent.hal;
    const elapsed = elapsedMs(this.started, clock.ticks());
    for (const check of this.checks) {
      if (this.passed.has(check.name)) continue;
      const status = check.poll();
      // What went wrong first: the audit keeps only a 24-byte token of this ("self-test passed: …" read as a pass).
      if (status.state === 'failed') return this.fail(`${status.reason} (${check.name})`);
      if (status.state === 'passed') this.passed.add(check.name);
      else if (elapsed > check.deadlineMs) return this.fail(`${check.name}: not passed within ${check.deadlineMs} ms`);
    }
    if (this.passed.size === this.checks.length) {
      this.agent.commit();
      watchdog.disarm();
      this.state = 'committed';
      return this.state;
    }
    watchdog.feed();
    return this.state;
  }

  /** Roll back (restarts), or, when ESP-IDF's rule forbids it, stop the trial in 'rollback-impossible'. */
  private fail(reason: string): TrialState {
    this.state = 'rolled-back';
    this.agent.hal.watchdog.disarm();
    this.state = this.agent.rollBack(reason);
    return this.state;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
