/* The clock: ticks (the TSC where it is usable, else CLOCK_MONOTONIC ns) and their mapping to
 * CLOCK_MONOTONIC nanoseconds, calibrated at the first start and refined at each drain. */
#include "tr_core.h"

/* Decided by the first tr_clock_init (GIL held, before any hook records); read-only after. */
int tr_use_tsc;
/* The calibration start point (GIL). */
static tr_clock_t tr_clock_base;
static int tr_clock_ready;

#if TR_HAVE_TSC
/* A (tick, ns) pair read as close together as possible: the tightest of a few tries, so a
 * preemption between the two reads cannot skew the calibration. */
static void tr_clock_pair(uint64_t *tick, int64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 7; i++) {
        uint64_t a = __rdtsc();
        int64_t n = (int64_t)tr_monotonic_ns();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *ns = n;
            *tick = a + (b - a) / 2;
        }
    }
}
#endif

void tr_clock_init(void)
{
    if (tr_clock_ready) {
        return;
    }
    tr_clock_ready = 1;
    tr_clock_base = (tr_clock_t){0, 0, 1ull << 32};
#if TR_HAVE_TSC
    uint64_t t0, t1;
    int64_t n0, n1;
    tr_clock_pair(&t0, &n0);
    do {
        tr_clock_pair(&t1, &n1);
    } while (n1 - n0 < 2000000);
    double ticks_per_ns = (double)(t1 - t0) / (double)(n1 - n0);
    if (t1 > t0 && ticks_per_ns > 0.05 && ticks_per_ns < 20.0) {
        tr_use_tsc = 1;
        uint64_t mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
        tr_clock_base = (tr_clock_t){t0, n0, mult};
    }
#endif
}

void tr_clock_now(tr_clock_t *out)
{
    if (!tr_use_tsc) {
        *out = (tr_clock_t){0, 0, 1ull << 32};
        return;
    }
#if TR_HAVE_TSC
    uint64_t t;
    int64_t n;
    tr_clock_pair(&t, &n);
    uint64_t mult = tr_clock_base.mult;
    if (n - tr_clock_base.ns > 50000000 && t > tr_clock_base.tick) {
        /* a longer baseline gives a better rate */
        mult = (uint64_t)(((unsigned __int128)(n - tr_clock_base.ns) << 32) /
                          (t - tr_clock_base.tick));
    }
    *out = (tr_clock_t){t, n, mult};
#endif
}
