/*
 * Planted bug: the window moves before the tag is verified
 * (docs/models/replay-window.md).
 *
 * The receiver slides its window as soon as the counter looks fresh, and
 * checks the MAC or signature afterwards. A forged message with a high
 * counter then slides the window past genuine counters that were never
 * delivered: they are refused as stale (a denial of service that needs no
 * key).
 *
 * Expected: spin reports "assertion violated !(fresh_rejected)".
 */
#define BUG BUG_MOVE_BEFORE_VERIFY
#include "../replay-window.pml"
