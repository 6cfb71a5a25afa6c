/**
 * Which devices a rollout's stage offers the image to
 * (docs/spec/rollout.md, "Who is offered"): every eligible device gets a
 * rank from a hash of the rollout id and its device id, so the order is
 * the same after a restart and on every machine, unrelated to device ids'
 * order or manufacture batch, and a device's place does not move when
 * others join. Stage k offers the first ceil(N × percent_k / 100) of them.
 *
 * Host tool (Node).
 */
import { createHash } from 'node:crypto';
import type { RolloutPlan } from './plan.ts';

export type DeviceStanding = 'active' | 'quarantined' | 'revoked';

/** What a rollout needs to know of a device from the inventory. */
export interface FleetMember {
  /** 16 lowercase hex digits. */
  readonly device: string;
  readonly cohort: string;
  readonly gateway: string;
  readonly standing: DeviceStanding;
  /** The image version the device last proved it runs (its signed health record or commit). */
  readonly imageVersion: number;
}

/** The device's rank key in this rollout: the first 8 bytes of SHA-256("holdfast/v1/rollout" 0 id 0 device), as hex (compares as the number). */
export function rankKey(rolloutId: string, device: string): string {
  return createHash('sha256').update(`holdfast/v1/rollout\0${rolloutId}\0${device}`).digest('hex').slice(0, 16);
}

/** May this device be offered the plan's image (active, selected, below the target)? */
export function isEligible(plan: RolloutPlan, member: FleetMember): boolean {
  if (member.standing !== 'active') return false;
  if (member.imageVersion >= plan.target.imageVersion) return false;
  const select = plan.select;
  if (select?.cohorts && !select.cohorts.includes(member.cohort)) return false;
  if (select?.gateways && !select.gateways.includes(member.gateway)) return false;
  return true;
}

/** How many of `population` devices stage `percent` covers (at least one once the population has any). */
export function stageCount(population: number, percent: number): number {
  return Math.min(population, Math.ceil((population * Math.round(percent * 100)) / 10_000));
}

/**
 * The devices stage `percent` covers: the population (the eligible devices
 * and those already in the rollout), ranked, its first `stageCount`.
 */
export function covered(rolloutId: string, population: readonly string[], percent: number): string[] {
  const ranked = population.map((device) => ({ device, key: rankKey(rolloutId, device) }));
  ranked.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.device < b.device ? -1 : 1));
  return ranked.slice(0, stageCount(ranked.length, percent)).map((r) => r.device);
}
