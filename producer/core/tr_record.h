/* memscope tracer: what every recorded event needs -- whether its thread holds the GIL, its
 * stack and its timestamp -- and full mode's record paths (inlined into the hooks). */
#ifndef MEMSCOPE_TR_RECORD_H
#define MEMSCOPE_TR_RECORD_H

#include "tr_frame.h"

/* Whether this event's thread holds the GIL: always for MEM/OBJ, asked for RAW/numpy. */
static inline int tr_event_gil(unsigned domain)
{
    return domain == TR_MEM || domain == TR_OBJ || tr_stack_gil_held();
}

/* native mode hook: the stack of an event whose thread holds the GIL or not (`gil`); while
 * tr_native_mode.c presets one (t->nm_preset), that one. */
#define TR_EVENT_STACK(t, gil) ((t)->nm_preset ? (t)->nm_stack : (gil) ? tr_stack_current(t) : 0)

/* ---- timestamps ----
 * Reading the TSC costs about as much as the rest of a record (~10 ns on this machine's
 * kind). An allocation by a thread holding the GIL may reuse the thread's last reading for up
 * to TR_STAMP_REUSE events as long as nothing could have happened elsewhere in between: the
 * GIL did not change hands (3.11's switch counter), no drain ran and no thread recorded an
 * event without the GIL. Hence an allocation is never stamped before an event of another
 * thread that really happened before it (a block freed elsewhere and allocated here always
 * shows the free first).
 * A free (a death) always reads the clock, so it is never stamped before anything the
 * program saw happen earlier: a loop that frees and reads a clock without allocating (a float
 * from time.perf_counter, a sleep) would otherwise see its deaths stamped early.
 * A thread that sleeps with no other thread and no drain running (capture without the
 * publisher) may stamp its next few allocations with the time before the sleep. On 3.12+
 * (no switch counter) every event reads the clock. */
#define TR_STAMP_REUSE 8

/* Events recorded without the GIL so far (atomic, relaxed; tr_hooks.c). */
extern unsigned long tr_nogil_events;

#if TR_CAN_REUSE_STAMPS
static inline unsigned long tr_stamp_epoch(void)
{
    return tr_gil_switches_now() + tr_drain_epoch +
           __atomic_load_n(&tr_nogil_events, __ATOMIC_RELAXED);
}

/* A fresh reading that the thread's next allocations may reuse. */
static inline uint64_t tr_stamp_read(tr_thread_t *t, unsigned long epoch)
{
    t->stamp_tick = tr_tick();
    t->stamp_switch = epoch;
    t->stamp_reuse = TR_STAMP_REUSE;
    return t->stamp_tick;
}
#endif

/* The stamp of an allocation. */
static inline __attribute__((always_inline)) uint64_t tr_stamp(tr_thread_t *t, int gil)
{
#if TR_CAN_REUSE_STAMPS
    if (!tr_reuse_stamps) {
        return tr_tick(); /* (then nobody reuses: no epoch to move) */
    }
    if (gil) {
        unsigned long epoch = tr_stamp_epoch();
        if (epoch == t->stamp_switch && t->stamp_reuse != 0) {
            t->stamp_reuse--;
            return t->stamp_tick;
        }
        return tr_stamp_read(t, epoch);
    }
    __atomic_fetch_add(&tr_nogil_events, 1, __ATOMIC_RELAXED);
    t->stamp_reuse = 0;
#else
    (void)t;
    (void)gil;
#endif
    return tr_tick();
}

/* The stamp of a free: always a fresh reading (see above); later allocations may reuse it. */
static inline __attribute__((always_inline)) uint64_t tr_stamp_free(tr_thread_t *t, int gil)
{
#if TR_CAN_REUSE_STAMPS
    if (gil && tr_reuse_stamps) {
        return tr_stamp_read(t, tr_stamp_epoch());
    }
#endif
    return tr_stamp(t, gil);
}

static inline int tr_domain_gil(unsigned domain)
{
    return domain == TR_MEM || domain == TR_OBJ;
}

/* Full mode's paths, inlined into the hooks of each domain (the domain then folds away). */
static inline __attribute__((always_inline)) void
tr_full_alloc(tr_thread_t *t, unsigned kind, unsigned domain, void *ptr, size_t size)
{
    int gil = tr_event_gil(domain);
    tr_emit(t, kind, domain, (uint64_t)(uintptr_t)ptr, 0, size, TR_EVENT_STACK(t, gil), 1,
            tr_stamp(t, gil));
}

/* `tick`: tr_stamp_free, read before the block was freed; `gil`: tr_event_gil(domain).
 * A free in the RAW or MEM domain carries its stack: those are explicit PyMem_Free /
 * PyMem_RawFree calls, where a double free happens, and the security analyzer proves one only
 * with the second free's stack (and shows the first's). OBJ-domain frees (objects dying of
 * their reference count) stay without one: most frees are those. */
static inline __attribute__((always_inline)) void tr_full_free(tr_thread_t *t, unsigned domain,
                                                               void *ptr, uint64_t tick, int gil)
{
    uint32_t stack = domain == TR_OBJ ? 0 : TR_EVENT_STACK(t, gil);
    tr_emit(t, TR_FREE, domain, (uint64_t)(uintptr_t)ptr, 0, 0, stack, stack != 0, tick);
}

#endif
