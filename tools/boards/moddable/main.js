/*
 * holdfast device entry for the Moddable SDK, copied into the project by
 * `holdfast build --board <id>` (tools/boards/moddable/). Moddable runs the
 * default export of "main" once its setup modules have run.
 *
 * It hands the runtime (module "holdfast", the bundle of
 * firmware/runtime/main.ts) the adapters it needs today: System and Log. The
 * flash, OTA, watchdog and security-floor adapters belong in
 * firmware/targets/moddable (docs/PORTING.md); the native calls they need are
 * in holdfast-native.c already.
 */
import { startRuntime } from "holdfast";
import { resetReason, restart, runningPartition } from "holdfast-native";
import config from "mc/config";

const system = Object.freeze({
	lastResetReason() {
		return resetReason();
	},
	restart(reason) {
		trace(`holdfast: restart (${reason})\n`);
		restart();
		throw new Error("restart returned");
	},
});

const log = Object.freeze({
	write(level, area, message, fields) {
		trace(`${level} ${area}: ${message}${fields === undefined ? "" : ` ${JSON.stringify(fields)}`}\n`);
	},
});

export default function main() {
	const board = config.holdfast;
	trace(`holdfast: board ${board.board} (${board.chip}), running from ${runningPartition()}\n`);
	startRuntime({ system, log });
}
