/*
 * holdfast device entry for the Moddable SDK, copied into the project by
 * `holdfast build --board <id>` (tools/boards/moddable/). Moddable runs the
 * default export of "main" once its setup modules have run.
 *
 * Module "holdfast" is the bundle of firmware/targets/moddable/device.ts:
 * the runtime (startRuntime) and every HAL adapter over Moddable's modules
 * (createDeviceHal: flash partitions by label, otadata boot control, app
 * slots, clock, entropy, watchdog, SHA-256, TCP/TLS stream, eFuse floor,
 * console UART, log; docs/PORTING.md). The runtime takes the adapters it
 * needs from `hal`.
 */
import { startRuntime, createDeviceHal } from "holdfast";
import config from "mc/config";

export default function main() {
	const board = config.holdfast;
	const hal = createDeviceHal({
		// The console UART (the USB bridge of the DevKit boards); opened only by whoever asks (hal.openConsole).
		console: { port: 0, baud: 115200 },
	});
	hal.log.write("info", "boot", "board", { board: board.board, chip: board.chip, runningSlot: hal.runningSlot, sha256: hal.crypto.sha256Engine });
	startRuntime(hal);
}
