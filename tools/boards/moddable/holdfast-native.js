/*
 * holdfast native glue for ESP32 (ESP-IDF), bound to holdfast-native.c with
 * XS host functions (`@ "xs_name"`, the pattern of Moddable's
 * build/devices/esp32/modules/resetReason). Copied into the Moddable project
 * by `holdfast build --board <id>`.
 */

/* "power-on" | "software" | "watchdog" | "panic" | "brownout" | "unknown" (firmware/hal/system.ts). */
function resetReason() @ "xs_holdfast_reset_reason";
/* esp_restart(): does not return. */
function restart() @ "xs_holdfast_restart";
/* esp_task_wdt_reset() for the calling (XS) task. */
function feedWatchdog() @ "xs_holdfast_feed_watchdog";
/* Task watchdog timeout in ms as built (CONFIG_ESP_TASK_WDT_TIMEOUT_S). */
function watchdogTimeout() @ "xs_holdfast_watchdog_timeout";
/* Label of the running app partition ("ota_0" or "ota_1"). */
function runningPartition() @ "xs_holdfast_running_partition";
/* The anti-rollback eFuse floor, or -1 when anti-rollback is not built in. */
function secureVersion() @ "xs_holdfast_secure_version";
/* Burn the eFuse floor up to `version` (only after a commit); throws when anti-rollback is not built in. */
function raiseSecureVersion(version) @ "xs_holdfast_raise_secure_version";
/* The secure_version of the running image (esp_app_desc_t). */
function imageSecureVersion() @ "xs_holdfast_image_secure_version";

/* Block the XS task without feeding the task watchdog, which then panics and resets ("watchdog"): the Watchdog adapter's deadline passed. */
function expireWatchdog() @ "xs_holdfast_expire_watchdog";
/* esp_fill_random(): fill the buffer (ArrayBuffer or view) from the hardware RNG. */
function fillRandom(buffer) @ "xs_holdfast_fill_random";
/* Whether ESP-IDF encrypts the partition ("running", "nextota" or a data partition's label). */
function partitionEncrypted(name) @ "xs_holdfast_partition_encrypted";
/* esp_partition_read_raw(): fill the buffer with the partition's stored bytes at byteOffset, not decrypted. */
function readPartitionRaw(name, byteOffset, buffer) @ "xs_holdfast_read_partition_raw";

export { expireWatchdog, fillRandom, partitionEncrypted, readPartitionRaw, resetReason, restart, feedWatchdog, watchdogTimeout, runningPartition, secureVersion, raiseSecureVersion, imageSecureVersion };
