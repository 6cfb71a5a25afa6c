/*
 * Sliding anti-replay window with a persisted receiver (docs/models/replay-window.md).
 *
 * One sender, one receiver, one adversary, all in one process whose loop
 * picks any enabled action, so spin explores every interleaving:
 *
 *  - the sender sends counters that increase by 1..MAXSKIP (they skip);
 *  - the adversary delivers any counter it has seen, any number of times,
 *    in any order, or never (duplicate, reorder, drop, replay), and forges
 *    messages with any counter and a bad tag;
 *  - the receiver handles a delivery in steps (check the window, verify the
 *    tag, make a new ceiling durable on flash, move the window) and may
 *    crash and restart between any two of them (at most MAXRESTARTS times);
 *    a restart keeps only the flash: the durable ceiling P.
 *
 * The receiver's rule (firmware/security/replay-store.ts): before accepting
 * a counter above the ceiling C, persist C := counter + R; after a restart
 * refuse everything <= P (the restart floor) with an empty bitmap.
 *
 * Properties (assertions; the ghost `acc` holds every counter accepted, in
 * any boot):
 *   !(accepted_twice) - no counter is accepted twice, across restarts too;
 *   !(fresh_rejected) - a genuine counter above the restart floor, inside
 *                       the window and never accepted, is accepted.
 *
 * Every action prints one machine-readable EVENT line; traces of those
 * lines are replayed against the TypeScript (tools/models/replay-window-replay.ts).
 *
 * The planted-bug variants in replay-window-bugs/ define BUG and include
 * this file: each flips one rule, under `#if BUG == ...` below.
 */

#ifndef N
#define N 9             /* the largest counter the sender uses (counters 1..N; at most 28) */
#endif
#ifndef W
#define W 4             /* window bits: the bitmap covers H-W+1 .. H (at most 8: bm is a byte) */
#endif
#ifndef R
#define R 3             /* ceiling step: a raise persists counter + R */
#endif
#ifndef MAXSKIP
#define MAXSKIP 3       /* the sender's counter grows by 1..MAXSKIP per message */
#endif
#ifndef MAXRESTARTS
#define MAXRESTARTS 2
#endif
#ifndef ADVERSARY
#define ADVERSARY 1     /* 1: duplicate, reorder, drop, replay, forge; 0: in order without drops, plus replays */
#endif
#ifndef K
#define K 2             /* BUG_MESSAGE_COUNTED: persist every K accepts, refuse <= persisted + K */
#endif
#ifndef SIM
#define SIM 0           /* random simulations only (0 in every check): a crash needs SIM actions since the
                           last restart, and once the sender is done the run may end after as many */
#endif

#define BUG_NONE               0
#define BUG_LAZY_PERSIST       1  /* move the window first, persist the ceiling afterwards */
#define BUG_MESSAGE_COUNTED    2  /* a restart rule counted in messages */
#define BUG_MOVE_BEFORE_VERIFY 3  /* the window moves before the tag is verified */
#define BUG_WINDOW_EDGE        4  /* off by one at the old edge of the bitmap */
#ifndef BUG
#define BUG BUG_NONE
#endif

#define WMASK ((1 << W) - 1)

/* Receiver phases between the atomic steps of one delivery (crash points). */
#define IDLE       0
#define PERSISTING 1   /* the tag verified; a new ceiling must become durable first */
#define ACCEPTING  2   /* ready to move the window and hand the message over */
#define LAZY       3   /* BUG_LAZY_PERSIST / BUG_MESSAGE_COUNTED: accepted, persist pending */

/* sender and adversary */
byte last;             /* last counter sent (0: none yet) */
int sent;              /* bit c: counter c was sent, so the adversary knows it */
byte delivered;        /* ADVERSARY 0: last counter delivered in order */

/* flash: survives restarts */
byte P;                /* the durable ceiling (BUG_MESSAGE_COUNTED: the persisted H) */

/* receiver RAM: lost at a restart */
byte H;                /* highest accepted counter, or the floor */
byte bm;               /* bit i: counter H - i was accepted (i < W) */
byte floor;            /* everything <= floor is refused (restart floor) */
byte C;                /* the ceiling as the receiver knows it (== P once durable) */
byte pc;               /* the counter being handled */
byte phase;
byte count;            /* BUG_MESSAGE_COUNTED: accepts since the last persist */
byte restarts;
#if SIM
byte since;            /* SIM pacing: actions since the last restart */
#endif

/* ghost state: what really happened */
int acc;               /* bit c: counter c was accepted (handed over), in any boot */
byte gH;               /* max(floor, genuine counters accepted since the restart) */
bool accepted_twice;
bool fresh_rejected;

/* The window's verdict for counter c: 0 fresh, 1 duplicate, 2 stale. */
inline verdict(c, v) {
  if
  :: c <= floor -> v = 2
#if BUG == BUG_WINDOW_EDGE
  :: c > floor && c + W < H -> v = 2        /* BUG: should be c + W <= H: counter H - W has no bit */
  :: c > floor && c + W >= H && c > H -> v = 0
  :: c > floor && c + W >= H && c <= H && ((bm >> (H - c)) & 1) -> v = 1
  :: c > floor && c + W >= H && c <= H && !((bm >> (H - c)) & 1) -> v = 0
#else
  :: c > floor && c + W <= H -> v = 2
  :: c > floor && c + W > H && c > H -> v = 0
  :: c > floor && c + W > H && c <= H && ((bm >> (H - c)) & 1) -> v = 1
  :: c > floor && c + W > H && c <= H && !((bm >> (H - c)) & 1) -> v = 0
#endif
  fi
}

/* Move the window to take counter c (only ever for a fresh c). */
inline move(c) {
  if
  :: c > H && c - H < W -> bm = ((bm << (c - H)) | 1) & WMASK; H = c
  :: c > H && c - H >= W -> bm = 1; H = c
  :: c <= H -> bm = (bm | (1 << (H - c))) & WMASK
  fi
}

/* A delivery: counter c with a genuine (tag = 1) or forged (tag = 0) tag. */
inline deliver(c, tag) {
  verdict(c, v);
  if
  :: tag == 1 -> printf("EVENT deliver c=%d tag=ok", c)
  :: tag == 0 -> printf("EVENT deliver c=%d tag=bad", c)
  fi;
  if
  :: v == 0 -> printf(" check=fresh\n")
  :: v == 1 -> printf(" check=duplicate\n")
  :: v == 2 -> printf(" check=stale\n")
  fi;
  /* property: a genuine counter above the floor, inside the window, never accepted, is fresh */
  fresh_rejected = (tag == 1 && v != 0 && c > floor && c + W > gH && !((acc >> c) & 1));
  assert(!fresh_rejected);
#if BUG == BUG_MOVE_BEFORE_VERIFY
  if
  :: v == 0 -> move(c)                    /* BUG: the window moves before the tag is verified */
  :: else -> skip
  fi;
#endif
  if
  :: v == 0 && tag == 0 -> printf("EVENT reject c=%d reason=tag\n", c)
  :: v == 0 && tag == 1 ->
     pc = c;
#if BUG == BUG_LAZY_PERSIST || BUG == BUG_MESSAGE_COUNTED
     phase = ACCEPTING
#else
     if
     :: c > C -> phase = PERSISTING
     :: else -> phase = ACCEPTING
     fi
#endif
  :: v != 0 -> skip
  fi;
  v = 0
}

inline restart() {
  if
  :: phase == IDLE -> printf("EVENT restart stage=idle")
  :: phase == PERSISTING -> printf("EVENT restart stage=persisting c=%d", pc)
  :: phase == ACCEPTING -> printf("EVENT restart stage=accepting c=%d", pc)
  :: phase == LAZY -> printf("EVENT restart stage=lazy c=%d", pc)
  fi;
#if !ADVERSARY
  if
  :: phase != IDLE -> delivered = pc - 1  /* not acknowledged: the channel delivers it again (QoS 1) */
  :: else -> skip
  fi;
#endif
#if BUG == BUG_MESSAGE_COUNTED
  floor = P + K;                          /* BUG: "refuse anything at or below the persisted value plus K" */
  printf(" floor=%d\n", floor);
  P = floor;                              /* made durable before anything is accepted */
  printf("EVENT persist ceiling=%d\n", P);
#else
  floor = P;
  printf(" floor=%d\n", floor);
#endif
  H = floor; bm = 0; C = P; gH = floor;
  pc = 0; phase = IDLE; count = 0;
  restarts++
}

active proctype world() {
  byte c, d, v;
  printf("EVENT config N=%d W=%d R=%d maxskip=%d restarts=%d adversary=%d bug=%d k=%d\n",
         N, W, R, MAXSKIP, MAXRESTARTS, ADVERSARY, BUG, K);
end:
  do
  /* the sender: the next counter is 1..MAXSKIP above the last */
  :: atomic { phase == IDLE && last < N ->
       select (c : 1 .. MAXSKIP);
       if
       :: last + c <= N -> last = last + c; sent = sent | (1 << last); printf("EVENT send c=%d\n", last)
       :: else -> skip
       fi;
       c = 0 }
#if ADVERSARY
  /* the adversary delivers anything it has seen, as often and in whatever order it likes: */
  /* the latest counter (redundant for the search, it keeps random runs lively) ... */
  :: atomic { phase == IDLE && last > 0 -> deliver(last, 1) }
  /* ... or any other */
  :: atomic { phase == IDLE && sent != 0 ->
       select (c : 0 .. N - 1);           /* counted down from the last sent: a random run favours recent ones */
       if
       :: c < last && (sent >> (last - c)) & 1 -> d = last - c; deliver(d, 1); d = 0
       :: else -> skip
       fi;
       c = 0 }
  /* ... and forges any counter (the tag does not verify) */
  :: atomic { phase == IDLE ->
       select (c : 0 .. N - 1);           /* counted down from N: a random run favours high ones */
       d = N - c;
       deliver(d, 0);
       c = 0; d = 0 }
#else
  /* no drop, no reorder: every counter sent is delivered once, in order ... */
  :: atomic { phase == IDLE && delivered < last ->
       c = delivered + 1;
       do
       :: (sent >> c) & 1 -> break
       :: else -> c++
       od;
       delivered = c;
       deliver(c, 1);
       c = 0 }
  /* ... and the adversary replays any counter already delivered */
  :: atomic { phase == IDLE && delivered > 0 ->
       select (c : 1 .. delivered);
       if
       :: (sent >> c) & 1 -> deliver(c, 1)
       :: else -> skip
       fi;
       c = 0 }
#endif
  /* the receiver makes the new ceiling durable (one flash write) */
#if BUG == BUG_LAZY_PERSIST || BUG == BUG_MESSAGE_COUNTED
  :: atomic { phase == LAZY ->
#if BUG == BUG_MESSAGE_COUNTED
       P = H;                             /* BUG: persists the highest counter, not a bound above it */
#else
       P = C;                             /* BUG: the ceiling raised at the accept becomes durable only now */
#endif
       printf("EVENT persist ceiling=%d\n", P);
       pc = 0;
       phase = IDLE }
#else
  :: atomic { phase == PERSISTING ->
       P = pc + R;
       C = P;
       printf("EVENT persist ceiling=%d\n", P);
       phase = ACCEPTING }
#endif
  /* the receiver moves the window and hands the message over */
  :: atomic { phase == ACCEPTING ->
#if BUG != BUG_MOVE_BEFORE_VERIFY
       move(pc);
#endif
       if
       :: pc > gH -> gH = pc
       :: else -> skip
       fi;
       printf("EVENT accept c=%d\n", pc);
       accepted_twice = (acc >> pc) & 1;
       assert(!accepted_twice);
       acc = acc | (1 << pc);
#if BUG == BUG_LAZY_PERSIST
       if
       :: pc > C -> C = pc + R; phase = LAZY   /* BUG: the ceiling becomes durable after the accept */
       :: else -> pc = 0; phase = IDLE
       fi
#elif BUG == BUG_MESSAGE_COUNTED
       count++;
       if
       :: count >= K -> count = 0; phase = LAZY
       :: else -> pc = 0; phase = IDLE
       fi
#else
       pc = 0;
       phase = IDLE
#endif
     }
  /* the receiver crashes (power cut, watchdog) between any two steps and restarts */
#if SIM
  :: atomic { restarts < MAXRESTARTS && since >= SIM -> restart(); since = 0 }
  :: atomic { since < SIM -> since++ }
  :: atomic { last == N && phase == IDLE && since >= SIM -> printf("EVENT end\n"); break }
#else
  :: atomic { restarts < MAXRESTARTS -> restart() }
#endif
  od
}
