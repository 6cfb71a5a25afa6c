/*
 * Planted bug: the new entry written over the live copy (docs/models/boot-control.md).
 *
 * setBootSlot writes NEW into the copy that holds the active entry instead of
 * the other one. The erase removes the only good entry: a cut there, or the
 * trial's abort, leaves the bootloader without its way back, and it boots
 * the new image with no trial (R9 writes it VALID, R11 boots it with no rule).
 *
 * Expected: spin reports "assertion violated !(hang_committed)".
 */
#define BUG BUG_LIVE_COPY
#include "../boot-control.pml"
