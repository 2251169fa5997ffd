/* The drain: every thread's records since the last drain as rec1 chunks, plus the rare rows
 * (stacks, aggregated mode's live blocks, native-mode findings, the producer's counters).
 * Runs with the GIL held, with the garbage collector paused and the calling thread's own
 * allocations kept out of the trace. */
#include "tr_core.h"
#include "tr_native_mode.h" /* native mode hooks: drain */

#include <stdbool.h>

/* All of these are protected by the GIL (only Python-callable functions touch them). */
int tr_draining;  /* a drain is in progress (it may let other threads run) */
int tr_gc_paused; /* the drain disabled the garbage collector (re-enabled while the drain
                   * lets other threads run, so a fork never inherits it off) */
static uint64_t tr_shipped_events, tr_shipped_bytes;

static PyObject *tr_none_or(bool have, uint64_t value)
{
    if (!have) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(value);
}

static int tr_stats_row(PyObject *rare, bool aggregated, uint64_t current, uint64_t peak)
{
    uint64_t events, drops, pending, high;
    tr_buffer_stats(&events, &drops, &pending, &high);
    static const char *const names[] = {
        "ts_ns", "events", "bytes", "drops", "buffer_high_water", "current_bytes", "peak_bytes"};
    PyObject *values[] = {PyLong_FromLongLong((long long)tr_monotonic_ns()),
                          PyLong_FromUnsignedLongLong(tr_shipped_events),
                          PyLong_FromUnsignedLongLong(tr_shipped_bytes),
                          PyLong_FromUnsignedLongLong(drops),
                          PyLong_FromUnsignedLongLong(high),
                          tr_none_or(aggregated, current),
                          tr_none_or(aggregated, peak)};
    return tr_append_row(rare, "producer_stats", names, values, 7);
}

/* The drain proper; the caller holds the reentrancy guard and tr_draining. */
static int tr_drain_into(PyObject *chunks, PyObject *rare, uint64_t max_events)
{
    tr_clock_t clock;
    tr_clock_now(&clock);
    /* tr_mode stays that of the last start, so the drain after stop still reports */
    bool aggregated = tr_mode == TR_MODE_AGGREGATED;
    if (aggregated) {
        /* once stopped, everything still waiting is alive at the end: send it all */
        int64_t promoted = tr_hooks_promote(chunks, &clock, !tr_capture_active());
        if (promoted < 0) {
            return -1;
        }
        tr_shipped_events += (uint64_t)promoted;
    }
    uint64_t events = 0, bytes = 0;
    PyObject *more = tr_drain_chunks(max_events, &events, &bytes);
    if (more == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(more);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_Append(chunks, PyList_GET_ITEM(more, i)) < 0) {
            Py_DECREF(more);
            return -1;
        }
    }
    Py_DECREF(more);
    tr_shipped_events += events;
    tr_shipped_bytes += bytes;
    /* native mode hook: findings of the allocator shim as `ffi` rows (before the stacks) */
    if (tr_nm_emit(rare) < 0) {
        return -1;
    }
    /* After the chunks: every stack id they reference was interned before it was written. */
    if (tr_stack_emit(rare) < 0) {
        return -1;
    }
    uint64_t current = 0, peak = 0;
    if (aggregated && tr_hooks_emit_aggregates(rare, clock.ns, &current, &peak) < 0) {
        return -1;
    }
    if (n > 0 || aggregated || PyDict_Size(rare) > 0) {
        return tr_stats_row(rare, aggregated, current, peak);
    }
    return 0;
}

int tr_drain(PyObject *chunks, PyObject *rare, uint64_t max_events, int commit)
{
    if (tr_draining) {
        /* another drain is running (it let this thread in): nothing is lost, data waits */
        return 0;
    }
    tr_thread_t *t = tr_current();
    uint8_t was_ignored = t ? t->ignored : 0;
    if (t != NULL) {
        t->ignored |= TR_DRAINING; /* the drain's own allocations are memscope's (tr_own.c) */
    }
    tr_draining = 1;
    tr_drain_epoch++; /* threads read the clock afresh after a drain (see tr_stamp) */
    /* No garbage collection inside the drain: this thread records nothing while draining,
     * so a collection here would free other threads' blocks unseen. It runs later. */
    tr_gc_paused = PyGC_Disable();
    int rc = tr_drain_into(chunks, rare, max_events);
    if (rc == 0 && commit) {
        tr_buffers_commit(tr_arena_next_seq());
    }
    if (tr_gc_paused) {
        PyGC_Enable();
        tr_gc_paused = 0;
    }
    tr_draining = 0;
    if (t != NULL) {
        t->ignored = was_ignored;
    }
    return rc;
}

int tr_drain_commit(uint64_t next_seq)
{
    if (tr_draining) {
        return 0;
    }
    tr_buffers_commit(next_seq);
    return 1;
}

void tr_drain_shipped(uint64_t *events, uint64_t *bytes)
{
    *events = tr_shipped_events;
    *bytes = tr_shipped_bytes;
}

void tr_drain_after_fork_child(void)
{
    tr_draining = 0;
    tr_shipped_events = 0;
    tr_shipped_bytes = 0;
}
