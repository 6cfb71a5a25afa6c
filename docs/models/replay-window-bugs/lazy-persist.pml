/*
 * Planted bug: lazy receiver persistence (docs/models/replay-window.md).
 *
 * The receiver moves its window and hands the message over first, and makes
 * the raised ceiling durable afterwards (a write-behind, or "persist when
 * idle"). A crash between the two loses the raise: after the restart the
 * floor is the old ceiling, and the adversary replays the accepted counter.
 *
 * Expected: spin reports "assertion violated !(accepted_twice)".
 */
#define BUG BUG_LAZY_PERSIST
#include "../replay-window.pml"
