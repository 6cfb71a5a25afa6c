/**
 * The update responder's gate for a rollout (tools/update-server/responder.ts
 * `allow`, docs/spec/rollout.md "Serving the image"): the image is served
 * only to devices the rollout offered it to, while it runs or after it
 * completed; a halted rollout serves nobody (no device goes on downloading
 * an image the rollout stopped). A device that already refused or rolled
 * back (its signed word) is not served again.
 *
 * Host tool (Node).
 */
import type { Rollout } from './engine.ts';

/** `allow` for createUpdateResponder: reads the rollout's state at each call, so it follows every step. */
export function rolloutGate(rollout: () => Rollout): (deviceHex: string) => boolean {
  return (deviceHex) => {
    const r = rollout();
    if (r.status === 'halted') return false;
    const outcome = r.outcomeOf(deviceHex);
    if (outcome === undefined) return false;
    return !(outcome.cause?.startsWith('rolled-back:') === true || outcome.cause?.startsWith('refused:') === true);
  };
}
