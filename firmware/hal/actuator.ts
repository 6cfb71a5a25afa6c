/**
 * Actuators: the one edge through which a command causes a physical effect
 * (docs/spec/commands.md). Interface only; the board's adapter drives the
 * hardware (a relay, a valve, a motor driver).
 *
 * Idempotence is holdfast's job, not the adapter's: the command processor
 * (firmware/runtime/commands.ts) journals an intent on flash before it calls
 * `apply` and a completion after, and never calls `apply` twice for one
 * command counter, across power cuts included. An adapter should still make
 * a repeated apply of the same effect harmless where the hardware allows it
 * (drive an absolute state, not a toggle), as defence in depth, but nothing
 * in holdfast relies on that: an effect cut between intent and completion
 * is reported as "outcome unknown" and is never applied again.
 */
export interface ActuatorEffect {
  /** What to do, from the policy table: 'set-output', 'set-level', 'pulse-output'. */
  readonly kind: string;
  /** Which actuator, by the board's name for it ('output-0' ...). */
  readonly target: string;
  /** The value the command asks for (state, level or duration; bounds in the policy table). */
  readonly value: number;
}

export interface Actuator {
  /**
   * Cause `effect` now; returns once the hardware took it. `commandCounter`
   * names the command (the fleet signer's counter): an adapter that forwards
   * to a controller with its own memory may pass it on for that controller's
   * own de-duplication. A throw means the outcome is not known (the effect
   * may have happened in part): the processor never applies that command
   * again and reports it as "outcome unknown".
   */
  apply(effect: ActuatorEffect, commandCounter: number): void;
}
