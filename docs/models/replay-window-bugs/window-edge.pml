/*
 * Planted bug: off by one at the old edge of the window
 * (docs/models/replay-window.md).
 *
 * The bitmap has W bits, for counters H - W + 1 .. H. The buggy stale test
 * refuses only counters below H - W, so counter H - W passes the range
 * check, finds no bit of its own (it reads as "not seen") and is accepted
 * again however often it is replayed.
 *
 * Expected: spin reports "assertion violated !(accepted_twice)".
 */
#define BUG BUG_WINDOW_EDGE
#include "../replay-window.pml"
