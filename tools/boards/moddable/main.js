/*
 * holdfast device entry for the Moddable SDK, copied into the project by
 * `holdfast build --board <id>` (tools/boards/moddable/). Moddable runs the
 * default export of "main" once its setup modules have run.
 *
 * Module "holdfast" is the bundle of firmware/targets/moddable/device.ts:
 * the runtime and every HAL adapter over Moddable's modules (flash
 * partitions by label, otadata boot control, app slots, clock, entropy,
 * watchdog, SHA-256, TCP/TLS stream, eFuse floor, console UART, log;
 * docs/PORTING.md). `bootDevice` builds the adapters and starts the runtime
 * over them with the device's provisioning.
 */
import { bootProvisionedDevice } from "holdfast";
import config from "mc/config";

/* UART0 RX/TX GPIOs per chip (ESP32: U0RXD 3, U0TXD 1; ESP32-S3: 44, 43; ESP32-C3: 20, 21). */
const CONSOLE_PINS = Object.freeze({
	esp32: Object.freeze({ receive: 3, transmit: 1 }),
	esp32s3: Object.freeze({ receive: 44, transmit: 43 }),
	esp32c3: Object.freeze({ receive: 20, transmit: 21 }),
});

export default function main() {
	const board = config.holdfast;
	// The device's provisioning (device id and secret, key id, command key, console and revocation
	// keys, broker) is read from hf_prov (docs/spec/provisioning.md): an erased partition logs
	// "not provisioned" and the runtime does not start; a record that does not read is the boot
	// failure provisioning-unreadable (safe mode persisted, no runtime, no network).
	const { hal, provisioning } = bootProvisionedDevice({
		// The board's chip and task watchdog: the update's settings, and the trial's link checks with deadlines from the watchdog.
		board: { board: board.board, chip: board.chip, watchdogTimeoutMs: board.watchdogTimeoutMs },
		// The console UART: UART0 on the pins of each chip's USB-serial bridge, where the runtime serves
		// its serial console (docs/spec/console.md). A debug build (mcconfig -d) keeps UART0 for xsbug:
		// opening it fails with "port in use", logged, and the device runs without its console.
		console: { port: 0, baud: 115200, ...CONSOLE_PINS[board.chip] },
	});
	hal.log.write("info", "boot", "board", { board: board.board, chip: board.chip, runningSlot: hal.runningSlot, sha256: hal.crypto.sha256Engine, provisioning: provisioning.state });
}
