/*
 * Planted bug: the floor raised before VALID is durable (docs/models/boot-control.md).
 *
 * The commit raises the anti-rollback floor to the trial image's secure
 * version first, and marks the entry VALID afterwards. A cut between the two
 * leaves the floor above every confirmed image; with a hanging or broken
 * image the previous one is refused by the floor.
 *
 * Expected: spin reports "assertion violated !(floor_early)".
 */
#define BUG BUG_FLOOR_EARLY
#include "../boot-control.pml"
