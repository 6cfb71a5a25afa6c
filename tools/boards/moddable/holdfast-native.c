/*
 * holdfast native glue for ESP32 (ESP-IDF v5/v6), host functions for
 * holdfast-native.js. Copied into the Moddable project by
 * `holdfast build --board <id>` and compiled by mcconfig; the board's
 * values arrive as MODDEF_HOLDFAST_* (manifest "defines": "holdfast").
 */
#include "xsPlatform.h"
#include "xsmc.h"
#include "mc.defines.h"
#include "sdkconfig.h"

#include "esp_system.h"
#include "app_update/include/esp_ota_ops.h"	/* as Moddable's modules/ota/ota.c; also declares esp_app_get_description */
#include "esp_efuse.h"
#include <string.h>
#include "esp_partition.h"
#include "esp_random.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#if CONFIG_ESP_TASK_WDT_EN
	#include "esp_task_wdt.h"
#endif

/* A board built for the wrong chip fails here, at compile time, not on the device. */
#if defined(MODDEF_HOLDFAST_CHIP_ID) && defined(CONFIG_IDF_FIRMWARE_CHIP_ID) && (MODDEF_HOLDFAST_CHIP_ID != CONFIG_IDF_FIRMWARE_CHIP_ID)
	#error "holdfast: board.json chipId differs from the ESP-IDF target: build with the board's Moddable platform (-p)"
#endif
/* Holdfast's promises need these; bootloader-config/common/sdkconfig.defaults sets them. */
#if !CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
	#error "holdfast: CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE is off: the manifest's SDKCONFIGPATH was not applied"
#endif
#if !CONFIG_ESP_TASK_WDT_EN || !CONFIG_ESP_TASK_WDT_PANIC
	#error "holdfast: the task watchdog must be on and panic (CONFIG_ESP_TASK_WDT_EN, CONFIG_ESP_TASK_WDT_PANIC)"
#endif

void xs_holdfast_reset_reason(xsMachine *the)
{
	const char *reason;
	switch (esp_reset_reason()) {
		case ESP_RST_POWERON:	reason = "power-on"; break;
		case ESP_RST_SW:		reason = "software"; break;
		case ESP_RST_PANIC:		reason = "panic"; break;
		case ESP_RST_INT_WDT:
		case ESP_RST_TASK_WDT:
		case ESP_RST_WDT:		reason = "watchdog"; break;
		case ESP_RST_BROWNOUT:	reason = "brownout"; break;
		default:				reason = "unknown"; break;
	}
	xsmcSetString(xsResult, (char *)reason);
}

void xs_holdfast_restart(xsMachine *the)
{
	esp_restart();
}

void xs_holdfast_feed_watchdog(xsMachine *the)
{
#if CONFIG_ESP_TASK_WDT_EN
	esp_task_wdt_reset();
#endif
}

void xs_holdfast_watchdog_timeout(xsMachine *the)
{
#if CONFIG_ESP_TASK_WDT_EN
	xsmcSetInteger(xsResult, CONFIG_ESP_TASK_WDT_TIMEOUT_S * 1000);
#else
	xsmcSetInteger(xsResult, 0);
#endif
}

void xs_holdfast_running_partition(xsMachine *the)
{
	const esp_partition_t *running = esp_ota_get_running_partition();
	if (NULL == running)
		xsUnknownError("no running partition");
	xsmcSetString(xsResult, (char *)running->label);
}

void xs_holdfast_secure_version(xsMachine *the)
{
#if CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
	xsmcSetInteger(xsResult, (xsIntegerValue)esp_efuse_read_secure_version());
#else
	xsmcSetInteger(xsResult, -1);
#endif
}

void xs_holdfast_raise_secure_version(xsMachine *the)
{
#if CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK
	int version = xsmcToInteger(xsArg(0));
	if ((version < 0) || (version > CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD))
		xsRangeError("secure version out of the eFuse field");
	if (ESP_OK != esp_efuse_update_secure_version((uint32_t)version))
		xsUnknownError("eFuse secure version update failed");
#else
	xsUnknownError("anti-rollback is not built in (holdfast build --secure-version)");
#endif
}

void xs_holdfast_image_secure_version(xsMachine *the)
{
	xsmcSetInteger(xsResult, (xsIntegerValue)esp_app_get_description()->secure_version);
}

/*
 * The partition a name opens, resolved as Moddable's embedded:storage/flash
 * does (modules/io/flash/esp32/flash-esp32.c, xs_flashstorage_open):
 * "running" esp_ota_get_running_partition(), "nextota"
 * esp_ota_get_next_update_partition(NULL), otherwise the data partition
 * with that label, esp_partition_find_first(ESP_PARTITION_TYPE_DATA,
 * ESP_PARTITION_SUBTYPE_ANY, label). Throws as the module does when none.
 */
static const esp_partition_t *holdfastPartition(xsMachine *the, xsSlot *name)
{
	const char *label = xsmcToString(*name);
	const esp_partition_t *partition;
	if (0 == strcmp(label, "running"))
		partition = esp_ota_get_running_partition();
	else if (0 == strcmp(label, "nextota"))
		partition = esp_ota_get_next_update_partition(NULL);
	else
		partition = esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, label);
	if (NULL == partition)
		xsUnknownError("can't find partition");
	return partition;
}

/* esp_partition_t.encrypted: ESP-IDF encrypts this partition (flash encryption on, and an app, otadata or `encrypted` partition). */
void xs_holdfast_partition_encrypted(xsMachine *the)
{
	xsmcSetBoolean(xsResult, holdfastPartition(the, &xsArg(0))->encrypted);
}

/* esp_partition_read_raw(): the stored bytes without decryption, so that an erased unit reads 0xFF under flash encryption. */
void xs_holdfast_read_partition_raw(xsMachine *the)
{
	const esp_partition_t *partition = holdfastPartition(the, &xsArg(0));
	int offset = xsmcToInteger(xsArg(1));
	void *buffer;
	xsUnsignedValue length;
	xsmcGetBufferWritable(xsArg(2), &buffer, &length);
	if ((offset < 0) || ((uint32_t)offset + length > partition->size))
		xsRangeError("raw read outside the partition");
	if (ESP_OK != esp_partition_read_raw(partition, (size_t)offset, buffer, length))
		xsUnknownError("raw read failed");
}

/* esp_fill_random(): the hardware RNG into the buffer. */
void xs_holdfast_fill_random(xsMachine *the)
{
	void *buffer;
	xsUnsignedValue length;
	xsmcGetBufferWritable(xsArg(0), &buffer, &length);
	esp_fill_random(buffer, length);
}

/*
 * The Watchdog adapter's deadline passed: stop feeding. The XS task is
 * subscribed to the task watchdog (esp_task_wdt_add in Moddable's main.c)
 * and blocks here in vTaskDelay() without esp_task_wdt_reset(), so the task
 * watchdog expires and, with CONFIG_ESP_TASK_WDT_PANIC (required above),
 * panics and resets; esp_reset_reason() then says ESP_RST_TASK_WDT.
 */
void xs_holdfast_expire_watchdog(xsMachine *the)
{
	for (;;)
		vTaskDelay(pdMS_TO_TICKS(1000));
}
