/*
 * Planted bug: a restart rule counted in messages (docs/models/replay-window.md).
 *
 * The receiver persists its highest accepted counter every K accepted
 * messages and, after a restart, refuses anything at or below the persisted
 * value plus K, on the reasoning that at most K messages were accepted since.
 * That bounds messages, not counter values: a counter that skips (or a
 * drop, which looks the same to the receiver) moves the highest counter by
 * more than one per message, and what was accepted above persisted + K is
 * accepted again after the restart.
 *
 * Expected: spin reports "assertion violated !(accepted_twice)". With
 * -DMAXSKIP=1 -DADVERSARY=0 (no skips, a reliable in-order channel) the same
 * rule passes: only a model with skipping counters can tell.
 */
#define BUG BUG_MESSAGE_COUNTED
#include "../replay-window.pml"
