/*
 * A/B boot control with app rollback and power cuts (docs/models/boot-control.md).
 *
 * One device, one process whose loop takes any enabled step, so spin
 * explores every interleaving of the device's own steps with power cuts:
 *
 *  - otadata: two copies, each {seq, state, CRC ok}; seq 0 stands for the
 *    blank value 0xFFFFFFFF. Every write of a copy is two flash steps: erase
 *    (the copy reads blank) and program. A torn program leaves the copy with
 *    a bad CRC (modelled as blank: invalid and "initial").
 *  - two app slots, each an image {absent, torn, good, hang, forged} and its
 *    secure version; forged = complete and self-consistent (the bootloader
 *    would boot it) but not the signed image (the agent's digest check
 *    refuses it);
 *  - the bootloader (firmware/update/decide.ts, tools/sim/bootloader.ts):
 *    abort pass, active copy (valid, slot not refused by the eFuse floor,
 *    larger seq, copy 0 on a tie), rows R1..R13, its writes one flash step at
 *    a time, the floor raises;
 *  - the update agent (firmware/update/agent.ts): beginTrial, commit (VALID,
 *    then raise the floor), install (stage, verify, setBootSlot: NEW into the
 *    copy that does not hold the active entry, restart); a hanging image is
 *    reset by the watchdog;
 *  - power cuts between any two steps, at most MAXCUTS, some of them tearing
 *    the program in flight.
 *
 * Properties (assertions):
 *   !(boot_unverified) - the bootloader never hands over to an absent, torn
 *                        or forged image;
 *   !(no_good_image)   - at every step some slot holds a good image the
 *                        floor does not refuse (a monitor process), and every
 *                        boot boots something;
 *   !(hang_committed)  - a hanging image never becomes VALID or boots as VALID;
 *   !(floor_early)     - the floor never rises above the secure version of an
 *                        image whose VALID entry was durable.
 * LTL (with -DLTL=1, pan -a): []<> goodRunning.
 *
 * Every step prints one EVENT line; traces are replayed against the
 * TypeScript (tools/models/boot-control-replay.ts). Planted bugs in
 * boot-control-bugs/ define BUG and include this file.
 */

#ifndef MAXCUTS
#define MAXCUTS 3        /* power cuts (torn programs included) */
#endif
#ifndef MAXUPDATES
#define MAXUPDATES 3     /* update offers; each ends selected (NEW durable) or refused */
#endif
#ifndef FORGERY
#define FORGERY 1        /* an offer may deliver a forged image */
#endif
#ifndef LTL
#define LTL 0
#endif
#ifndef SIM
#define SIM 0            /* random simulations only (0 in every check): a cut needs SIM..3*SIM device steps since the last one */
#endif

#define BUG_NONE          0
#define BUG_FLOOR_EARLY   1  /* commit raises the floor before VALID is durable */
#define BUG_LIVE_COPY     2  /* setBootSlot writes NEW over the active copy */
#define BUG_EARLY_SELECT  3  /* NEW written before the image is complete and verified */
#ifndef BUG
#define BUG BUG_NONE
#endif

mtype = { NEW, PV, VALID, INVALID, ABORTED, UNDEF };        /* ota_state */
mtype = { ABSENT, TORN, GOOD, HANG, FORGED };              /* slot images */

/* device program counter */
#define B_PLAN     1   /* the bootloader reads otadata and decides */
#define B_ABORT0   2
#define B_ABORT1   3
#define B_PV       4
#define B_RAISE1   5
#define B_INIT     6
#define B_RAISE2   7
#define B_HAND     8   /* hand over to the slot */
#define A_START    9   /* the app runs (hangs, or the agent's beginTrial) */
#define A_COMMIT  10
#define A_RAISE   11
#define A_IDLE    12
#define A_STAGE1  13   /* erase the inactive slot */
#define A_STAGE2  14   /* part written */
#define A_STAGE3  15   /* all written */
#define A_VERIFY  16
#define A_SELECT  17
#define A_SELECTED 18
#define A_DONE    19   /* settled: nothing more to do */

/* flash: survives cuts */
byte cseq[2];          /* 0: blank (0xFFFFFFFF) */
mtype cst[2] = UNDEF;
bool ccrc[2];
mtype img[2] = ABSENT;
byte isv[2];            /* secure version of the image (header) */
byte fl = 1;           /* eFuse floor (not flash: only goes up) */

/* RAM */
byte pc = B_PLAN;
byte rs;               /* slot the app runs from (running slot) */
byte tgt;              /* slot being staged */
mtype incoming;        /* what the offer delivers */
/* the bootloader's plan */
bool ea0, ea1;         /* abort copy 0 / 1 */
byte epv;              /* copy + 1 to mark PENDING_VERIFY, 0 none */
byte er1;              /* floor raise before loading (version), 0 none */
byte einit;            /* copy 0 := {seq einit, VALID} after loading, 0 none */
byte er2;              /* floor raise after the initial write */
byte bslot;            /* 0, 1, or 2: none */
byte brow;
/* a copy write in progress: 1 erase next, 2 program next */
byte wstage, wc, wseq;
mtype wst;
bool wcrc;

/* environment */
byte cuts;
byte offers = MAXUPDATES;
byte nextsv = 2;
#if SIM
byte since, gap = SIM;  /* SIM pacing */
#endif

/* ghost */
byte committed = 1;    /* highest secure version of an image whose VALID entry was durable */
bool ready;            /* provisioned: the monitor starts */
bool boot_unverified, no_good_image, hang_committed, floor_early;

#if SIM
#define CUTOK && since >= gap
#else
#define CUTOK
#endif
#define slotOf(s) (((s) + 1) % 2)   /* (seq - 1) mod 2 for seq >= 1 */
#define validC(i) (cseq[i] != 0 && cst[i] != INVALID && cst[i] != ABORTED && ccrc[i])
#define initialC(i) (cseq[i] == 0 || !ccrc[i])
#define goodImage(s) (img[s] == GOOD && isv[s] >= fl)
#define goodRunning (pc >= A_START && img[rs] == GOOD)

/* esp_ota_get_state_partition: first copy (0, then 1) whose seq maps to slot s and whose CRC matches */
inline stateOfSlot(s, out) {
  if
  :: ccrc[0] && cseq[0] != 0 && slotOf(cseq[0]) == s -> out = cst[0]
  :: else ->
     if
     :: ccrc[1] && cseq[1] != 0 && slotOf(cseq[1]) == s -> out = cst[1]
     :: else -> out = 0     /* none */
     fi
  fi
}

/* the app side's activeCopy (no anti-rollback): 0, 1, or 2 none */
inline appActive(a) {
  if
  :: validC(0) && validC(1) -> if :: cseq[1] > cseq[0] -> a = 1 :: else -> a = 0 fi
  :: validC(0) && !validC(1) -> a = 0
  :: !validC(0) && validC(1) -> a = 1
  :: else -> a = 2
  fi
}

/* SIM pacing: device steps since the last cut */
inline tick() {
#if SIM
  if :: since < 255 -> since++ :: else -> skip fi
#else
  skip
#endif
}

inline startWrite(c, s, t, k) {
  wc = c; wseq = s; wst = t; wcrc = k; wstage = 1
}

inline powerCut() {
  cuts++;
#if SIM
  since = 0;
  select (gap : SIM .. 3 * SIM);
#endif
  wstage = 0; ea0 = 0; ea1 = 0; epv = 0; er1 = 0; einit = 0; er2 = 0; bslot = 0; brow = 0;
  rs = 0; tgt = 0; incoming = 0;
  pc = B_PLAN
}

inline raiseFloor(v, who) {
  floor_early = (v > committed);
  if
  :: v > fl -> fl = v
  :: else -> skip
  fi;
  if
  :: who == 0 -> printf("EVENT raise floor=%d by=boot\n", fl)
  :: else -> printf("EVENT raise floor=%d by=agent\n", fl)
  fi;
  assert(!floor_early)
}

/* Step 0 and 1 of a boot, and the row: decide.ts planBoot. */
inline plan() {
  /* the abort pass, in memory */
  ea0 = (cst[0] == PV); ea1 = (cst[1] == PV);
  s0 = cst[0]; s1 = cst[1];
  if :: ea0 -> s0 = ABORTED :: else -> skip fi;
  if :: ea1 -> s1 = ABORTED :: else -> skip fi;
  v0 = cseq[0] != 0 && s0 != INVALID && s0 != ABORTED && ccrc[0] && img[slotOf(cseq[0])] != ABSENT && isv[slotOf(cseq[0])] >= fl;
  v1 = cseq[1] != 0 && s1 != INVALID && s1 != ABORTED && ccrc[1] && img[slotOf(cseq[1])] != ABSENT && isv[slotOf(cseq[1])] >= fl;
  if
  :: initialC(0) && initialC(1) -> summary = 1; act = 2
  :: else ->
     if
     :: v0 && v1 -> if :: cseq[1] > cseq[0] -> act = 1 :: else -> act = 0 fi
     :: v0 && !v1 -> act = 0
     :: !v0 && v1 -> act = 1
     :: else -> act = 2
     fi;
     if :: act == 2 -> summary = 2 :: else -> summary = 0 fi   /* 0 active, 2 no-active */
  fi;
  if
  :: act == 0 -> start = slotOf(cseq[0]); st = s0
  :: act == 1 -> start = slotOf(cseq[1]); st = s1
  :: else -> start = 0; st = 0
  fi;
  /* a VALID active copy raises the floor to the start slot's version before loading */
  lf = fl;
  if :: st == VALID && img[start] != ABSENT && isv[start] > lf -> lf = isv[start] :: else -> skip fi;
  /* classify: 0 bootable, 1 corrupt, 2 refused */
  if
  :: img[start] == ABSENT || isv[start] < lf -> kstart = 2
  :: else -> if :: img[start] == TORN -> kstart = 1 :: else -> kstart = 0 fi
  fi;
  if
  :: img[1 - start] == ABSENT || isv[1 - start] < lf -> kother = 2
  :: else -> if :: img[1 - start] == TORN -> kother = 1 :: else -> kother = 0 fi
  fi;
  /* the table */
  bslot = 2; epv = 0; er1 = 0; einit = 0; er2 = 0;
  if
  :: summary == 0 && st == NEW ->
     if
     :: kstart == 0 -> brow = 1; bslot = start
     :: kstart != 0 && kother == 0 -> brow = 2; bslot = 1 - start
     :: else -> brow = 3
     fi;
     epv = act + 1
  :: summary == 0 && st == VALID ->
     if
     :: kstart == 0 -> brow = 4; bslot = start
     :: kstart != 0 && kother == 0 -> brow = 5; bslot = 1 - start
     :: else -> brow = 6
     fi;
     if :: img[start] != ABSENT -> er1 = isv[start] :: else -> skip fi
  :: summary == 0 && st != NEW && st != VALID ->
     if
     :: kstart == 0 -> brow = 7; bslot = start
     :: kstart != 0 && kother == 0 -> brow = 8; bslot = 1 - start
     :: else -> brow = 13
     fi
  :: summary == 1 ->
     if
     :: kstart == 0 -> brow = 9; bslot = start
     :: kstart != 0 && kother == 0 -> brow = 10; bslot = 1 - start
     :: else -> brow = 13
     fi;
     if :: bslot != 2 -> einit = bslot + 1; er2 = isv[bslot] :: else -> skip fi
  :: summary == 2 ->
     if
     :: kstart == 0 -> brow = 11; bslot = start
     :: kstart != 0 && kother == 0 -> brow = 12; bslot = 1 - start
     :: else -> brow = 13
     fi
  fi;
  printf("EVENT plan row=R%d slot=%d\n", brow, bslot);
  s0 = 0; s1 = 0; v0 = 0; v1 = 0; summary = 0; act = 0; start = 0; st = 0; lf = 0; kstart = 0; kother = 0
}

/* "always a good image to come back to", at every step */
active proctype monitor() {
end:
  atomic { ready && !(goodImage(0) || goodImage(1)) -> no_good_image = 1; assert(!no_good_image) }
}

active proctype device() {
  mtype s0, s1, st, x;
  bool v0, v1;
  byte summary, act, start, lf, kstart, kother, a;
  printf("EVENT config cuts=%d updates=%d forgery=%d bug=%d\n", MAXCUTS, MAXUPDATES, FORGERY, BUG);
  /* as provisionDevice leaves it: the factory image in ota_0, otadata and ota_1 erased */
  atomic { img[0] = GOOD; isv[0] = 1; ready = 1 };
end:
  do
  /* ---- one otadata copy write: erase, then program; a cut may tear the program ---- */
  :: atomic { wstage == 1 ->
       cseq[wc] = 0; cst[wc] = UNDEF; ccrc[wc] = 0;
       printf("EVENT erase copy=%d\n", wc); tick();
       wstage = 2 }
  :: atomic { wstage == 2 ->
       cseq[wc] = wseq; cst[wc] = wst; ccrc[wc] = wcrc;
       printf("EVENT write copy=%d seq=%d state=%e\n", wc, wseq, wst); tick();
       if
       :: wst == VALID && wcrc ->
          hang_committed = (img[slotOf(wseq)] == HANG);
          assert(!hang_committed);
          if :: isv[slotOf(wseq)] > committed -> committed = isv[slotOf(wseq)] :: else -> skip fi
       :: else -> skip
       fi;
       wstage = 0 }
  :: atomic { wstage == 2 && cuts < MAXCUTS CUTOK ->
       printf("EVENT torn copy=%d\n", wc);      /* CRC does not match: invalid, initial */
       powerCut() }
  /* ---- a power cut between any two steps ---- */
  :: atomic { cuts < MAXCUTS CUTOK -> printf("EVENT cut\n"); powerCut() }


  /* ---- the bootloader ---- */
  :: atomic { wstage == 0 && pc == B_PLAN -> plan(); tick(); pc = B_ABORT0 }
  :: atomic { wstage == 0 && pc == B_ABORT0 -> if :: ea0 -> startWrite(0, cseq[0], ABORTED, ccrc[0]) :: else -> skip fi; pc = B_ABORT1 }
  :: atomic { wstage == 0 && pc == B_ABORT1 -> if :: ea1 -> startWrite(1, cseq[1], ABORTED, ccrc[1]) :: else -> skip fi; pc = B_PV }
  :: atomic { wstage == 0 && pc == B_PV -> if :: epv > 0 -> startWrite(epv - 1, cseq[epv - 1], PV, ccrc[epv - 1]) :: else -> skip fi; pc = B_RAISE1 }
  :: atomic { wstage == 0 && pc == B_RAISE1 -> if :: er1 > 0 -> raiseFloor(er1, 0) :: else -> skip fi; pc = B_INIT }
  :: atomic { wstage == 0 && pc == B_INIT -> if :: einit > 0 -> startWrite(0, einit, VALID, 1) :: else -> skip fi; pc = B_RAISE2 }
  :: atomic { wstage == 0 && pc == B_RAISE2 -> if :: einit > 0 -> raiseFloor(er2, 0) :: else -> skip fi; pc = B_HAND }
  :: atomic { wstage == 0 && pc == B_HAND ->
       no_good_image = (bslot == 2);
       assert(!no_good_image);
       rs = bslot;
       stateOfSlot(rs, x);
       if
       :: x == 0 -> printf("EVENT boot slot=%d row=R%d state=none floor=%d image=%e\n", rs, brow, fl, img[rs])
       :: else -> printf("EVENT boot slot=%d row=R%d state=%e floor=%d image=%e\n", rs, brow, x, fl, img[rs])
       fi;
       boot_unverified = (img[rs] != GOOD && img[rs] != HANG);
       assert(!boot_unverified);
       hang_committed = (img[rs] == HANG && x == VALID);
       assert(!hang_committed);
       x = 0; bslot = 0; brow = 0; ea0 = 0; ea1 = 0; epv = 0; er1 = 0; einit = 0; er2 = 0;
       tick();
       pc = A_START }

  /* ---- the app ---- */
  :: atomic { wstage == 0 && pc == A_START && img[rs] == HANG ->
       printf("EVENT hang slot=%d\n", rs);        /* no step runs; the watchdog resets the device */
       rs = 0; pc = B_PLAN }
  :: atomic { wstage == 0 && pc == A_START && img[rs] != HANG ->
       stateOfSlot(rs, x);
       if
       :: x == VALID || x == 0 -> pc = A_IDLE
       :: x == PV -> printf("EVENT trial slot=%d\n", rs); pc = A_COMMIT
       :: else ->
          /* markPendingVerify: only if the active copy names the running slot */
          appActive(a);
          printf("EVENT trial slot=%d\n", rs);
          if
          :: a != 2 && slotOf(cseq[a]) == rs -> startWrite(a, cseq[a], PV, 1)
          :: else -> skip
          fi;
          pc = A_COMMIT
       fi;
       x = 0; a = 0 }
  /* every health check passed (a good image): commit */
  :: atomic { wstage == 0 && pc == A_COMMIT ->
       appActive(a);
       if
       :: a == 2 || slotOf(cseq[a]) != rs -> printf("EVENT commit-skipped\n"); pc = A_IDLE
       :: else ->
          printf("EVENT commit\n");
#if BUG == BUG_FLOOR_EARLY
          raiseFloor(isv[rs], 1);     /* BUG: the floor first */
#endif
          if
          :: cst[a] != VALID -> startWrite(a, cseq[a], VALID, 1)
          :: else -> skip
          fi;
          pc = A_RAISE
       fi;
       a = 0 }
  :: atomic { wstage == 0 && pc == A_RAISE ->
#if BUG != BUG_FLOOR_EARLY
       raiseFloor(isv[rs], 1);
#endif
       pc = A_IDLE }
  :: atomic { wstage == 0 && pc == A_IDLE && offers > 0 -> pc = A_STAGE1 }
  :: atomic { wstage == 0 && pc == A_IDLE && offers == 0 -> printf("EVENT settle\n"); pc = A_DONE }
  /* install: stage into the inactive slot (erase, part, all), verify, select, restart */
  :: atomic { wstage == 0 && pc == A_STAGE1 ->
       tgt = 1 - rs;
       img[tgt] = ABSENT; isv[tgt] = 0;
       printf("EVENT stage slot=%d part=erase\n", tgt); tick();
       pc = A_STAGE2 }
  :: atomic { wstage == 0 && pc == A_STAGE2 ->
       img[tgt] = TORN; isv[tgt] = nextsv;
       printf("EVENT stage slot=%d part=partial sv=%d\n", tgt, nextsv); tick();
#if BUG == BUG_EARLY_SELECT
       pc = A_SELECT                      /* BUG: select before the image is complete and verified */
#else
       pc = A_STAGE3
#endif
     }
  :: atomic { wstage == 0 && pc == A_STAGE3 ->
       if
       :: incoming = GOOD
       :: incoming = HANG
#if FORGERY
       :: incoming = FORGED
#endif
       fi;
       img[tgt] = incoming; isv[tgt] = nextsv;
       printf("EVENT stage slot=%d part=done image=%e sv=%d\n", tgt, incoming, nextsv); tick();
       pc = A_VERIFY }
  :: atomic { wstage == 0 && pc == A_VERIFY ->
       if
       :: img[tgt] == FORGED ->
          printf("EVENT refuse slot=%d\n", tgt);   /* the digest is not the signed one */
          offers--; nextsv++;
          pc = A_IDLE
#if BUG == BUG_EARLY_SELECT
       :: else -> printf("EVENT restart\n"); offers--; nextsv++; pc = B_PLAN
#else
       :: else -> pc = A_SELECT
#endif
       fi;
       incoming = 0 }
  /* setBootSlot(tgt): planSetBootSlot, then erase and program one copy */
  :: atomic { wstage == 0 && pc == A_SELECT ->
       appActive(a);
       if
       :: a == 2 -> startWrite(0, tgt + 1, NEW, 1)
       :: a != 2 && slotOf(cseq[a]) == tgt -> startWrite(a, cseq[a], NEW, 1)
       :: a != 2 && slotOf(cseq[a]) != tgt ->
          /* seqForSlot: the smallest base + 2i >= seq, base = (tgt + 1) mod 2 */
          wseq = (tgt + 1) % 2;
          do
          :: wseq < cseq[a] -> wseq = wseq + 2
          :: else -> break
          od;
#if BUG == BUG_LIVE_COPY
          startWrite(a, wseq, NEW, 1)       /* BUG: over the active copy */
#else
          startWrite(1 - a, wseq, NEW, 1)
#endif
       fi;
       printf("EVENT select slot=%d copy=%d seq=%d\n", tgt, wc, wseq);
       a = 0;
       pc = A_SELECTED }
  :: atomic { wstage == 0 && pc == A_SELECTED ->
#if BUG == BUG_EARLY_SELECT
       pc = A_STAGE3
#else
       printf("EVENT restart\n");          /* update-staged: the offer is answered */
       offers--; nextsv++;
       pc = B_PLAN
#endif
     }
  od
}

#if LTL
ltl live { []<> goodRunning }
#endif
