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
import { StagingProgress } from './staging-progress.ts';
import { imageTag, stageImage, type ImageSource } from './staging.ts';
import { activeCopy, markInvalid, markValid, readOtadata, setBootSlot, slotForSeq, stateOfSlot, withSeqAndState, writeOtadataCopy } from './otadata.ts';
import { readAppImageHeader, verifyAppImage } from './app-image.ts';
import type { AuditSink } from './audit.ts';
import type { HealthCheck } from './health.ts';

/** The anti-rollback floor (the ESP32's secure-version eFuse): it only goes up. */
export interface SecurityFloor {
  readonly secureVersion: number;
  raise(version: number): void;
}

export interface UpdateDeps {
  readonly otadata: FlashPartition;
  readonly slots: readonly [FlashPartition, FlashPartition];
  /** The slot the bootloader started. */
  readonly runningSlot: SlotIndex;
  readonly progress: FlashPartition;
  readonly crypto: Crypto;
  readonly trust: TrustedRoot;
  readonly floor: SecurityFloor;
  readonly boardId: string;
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

export type InstallOutcome = { ok: false; reason: string; message: string };

export interface TrialOptions {
  /** Watchdog timeout during the trial; fed only while the checks are within their deadlines. */
  watchdogTimeoutMs: number;
}

export type TrialState = 'running' | 'committed' | 'rolled-back';

export class UpdateAgent {
  private trusted: TrustedRoot;

  constructor(private readonly deps: UpdateDeps) {
    this.trusted = deps.trust;
  }

  /** The root of trust manifests are checked against now. */
  get trustedRoot(): TrustedRoot {
    return this.trusted;
  }

  /**
   * Apply root rotations N→N+1→… (each signed by a threshold of the old and
   * of the new root keys) and persist the newest accepted root before using
   * it. A refused link stops the chain; the roots before it still count.
   */
  applyRoots(chain: readonly Uint8Array[], store: TrustStore): boolean {
    const from = this.trusted.version;
    const verdict = applyRootChain(this.deps.crypto, this.trusted, chain);
    if (verdict.root.version > from) {
      store.save(verdict.root);
      this.trusted = verdict.root;
      this.deps.audit.emit({ kind: 'root-rotated', fromVersion: from, toVersion: verdict.root.version });
    }
    if (!verdict.ok) this.deps.audit.emit({ kind: 'root-rejected', reason: verdict.reason, message: verdict.message });
    return verdict.ok;
  }

  /** Version of the image running now, from its slot header (0 if unreadable). */
  runningVersion(): number {
    const reading = readAppImageHeader(this.deps.slots[this.deps.runningSlot]);
    return reading.kind === 'header' ? reading.header.imageVersion : 0;
  }

  /**
   * Check `manifestBytes`, stage the image from `source` into the inactive
   * slot (resuming an interrupted download of the same image), select it
   * for a trial and restart. Returns only when it refuses; nothing is
   * written to the running slot in any case.
   */
  install(manifestBytes: Uint8Array, source: ImageSource): InstallOutcome {
    const { deps } = this;
    const target = (1 - deps.runningSlot) as SlotIndex;
    const slot = deps.slots[target];
    const verdict = checkManifest(deps.crypto, this.trusted, manifestBytes, {
      boardId: deps.boardId,
      runningVersion: this.runningVersion(),
      securityFloor: deps.floor.secureVersion,
      slotSize: slot.status().size,
    });
    if (!verdict.ok) return this.refuse(verdict.reason, verdict.message);
    const manifest = verdict.manifest;
    const progress = StagingProgress.open(deps.progress);
    const trials = progress.session()?.tag === imageTag(manifest.imageDigest) ? progress.session()!.trials : 0;
    if (trials >= MAX_TRIALS && this.failedBefore(target, manifest.imageVersion)) {
      return this.refuse('rolled-back-before', `version ${manifest.imageVersion} failed ${trials} trial boots on this device: a newer version is needed`);
    }
    const staged = stageImage(
      { slot, progress, crypto: deps.crypto, watchdog: deps.watchdog },
      { tag: imageTag(manifest.imageDigest), length: manifest.imageLength, sha256: manifest.imageDigest },
      source,
    );
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
   * Returns undefined when the running image is already VALID.
   */
  beginTrial(checks: readonly HealthCheck[], options: TrialOptions): TrialBoot | undefined {
    const { deps } = this;
    const readings = readOtadata(deps.otadata);
    const state = stateOfSlot(readings, deps.runningSlot);
    if (state === 'valid' || state === undefined) {
      this.reportAbortedTrial();
      return undefined;
    }
    if (state !== 'pending-verify') this.markPendingVerify();
    return new TrialBoot(this, checks, options);
  }

  /** @internal Called by TrialBoot when every check passed: VALID first, then the floor. */
  commit(): void {
    const { deps } = this;
    const readings = readOtadata(deps.otadata);
    const active = activeCopy(readings);
    // Confirm only what is running: after a fallback the active copy may name the other slot.
    if (active === undefined || slotForSeq(readings[active].seq) !== deps.runningSlot) return;
    markValid(deps.otadata);
    const header = readAppImageHeader(deps.slots[deps.runningSlot]);
    if (header.kind === 'header') {
      deps.floor.raise(header.header.secureVersion);
      deps.audit.emit({ kind: 'update-committed', imageVersion: header.header.imageVersion, securityVersion: header.header.secureVersion, slot: deps.runningSlot });
    }
  }

  /** @internal Called by TrialBoot when a check failed: INVALID, then back to the previous slot. */
  rollBack(reason: string): never {
    const { deps } = this;
    markInvalid(deps.otadata, (slot) => verifyAppImage(deps.slots[slot], deps.crypto.createSha256).kind === 'ok');
    deps.audit.emit({ kind: 'update-rolled-back', imageVersion: this.runningVersion(), reason });
    return deps.system.restart(`rollback: ${reason}`);
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
    const progress = StagingProgress.open(deps.progress);
    const session = progress.session();
    if (session === undefined || !session.complete || session.reported >= session.trials) return;
    const header = readAppImageHeader(deps.slots[other]);
    deps.audit.emit({ kind: 'update-rolled-back', imageVersion: header.kind === 'header' ? header.header.imageVersion : 0, reason: 'trial aborted by the bootloader: not confirmed (watchdog reset or power lost)' });
    progress.recordReported(session.trials);
  }

  /** @internal */
  get hal(): Pick<UpdateDeps, 'watchdog' | 'clock' | 'audit' | 'runningSlot'> {
    return this.deps;
  }

  /**
   * A running entry whose state reads as neither VALID nor PENDING_VERIFY
   * (a torn otadata erase can flip state bits under an intact CRC) would be
   * booted again without the bootloader's abort: mark it PENDING_VERIFY so
   * a hang during this trial still rolls back.
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
    const header = readAppImageHeader(this.deps.slots[slot]);
    return header.kind === 'header' && header.header.imageVersion === imageVersion;
  }

  /** The slot's own header must match the signed manifest before the bootloader is pointed at it. */
  private checkStagedImage(slot: FlashPartition, manifest: ImageManifest): { reason: string; message: string } | undefined {
    const verified = verifyAppImage(slot, this.deps.crypto.createSha256);
    if (verified.kind !== 'ok') return { reason: 'tampered', message: `the staged image does not verify as an app image (${verified.kind})` };
    const header = readAppImageHeader(slot);
    if (header.kind !== 'header' || header.header.imageVersion !== manifest.imageVersion || header.header.secureVersion !== manifest.securityVersion) {
      return { reason: 'tampered', message: 'the app header disagrees with the signed manifest (version or security version)' };
    }
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
      if (status.state === 'failed') this.fail(`${check.name}: ${status.reason}`);
      if (status.state === 'passed') this.passed.add(check.name);
      else if (elapsed > check.deadlineMs) this.fail(`${check.name}: not passed within ${check.deadlineMs} ms`);
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

  private fail(reason: string): never {
    this.state = 'rolled-back';
    this.agent.hal.watchdog.disarm();
    return this.agent.rollBack(reason);
  }
}
