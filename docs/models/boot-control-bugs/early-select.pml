/*
 * Planted bug: NEW written before the image is complete and verified
 * (docs/models/boot-control.md).
 *
 * The agent selects the slot for a trial as soon as the first part of the
 * image is written, and checks the digest against the signed manifest only
 * when the download ends. A forged image (complete and self-consistent, so
 * the bootloader loads it) is then refused too late: the next boot runs it.
 *
 * Expected: spin reports "assertion violated !(boot_unverified)".
 */
#define BUG BUG_EARLY_SELECT
#include "../boot-control.pml"
