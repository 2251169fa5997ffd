/* Allocator hooks for CPython's RAW, MEM and OBJ domains.
 *
 * Each domain gets its own set of functions that call the allocator that was installed
 * before (saved in tr_orig) and then record the event. A hook records nothing when tracing
 * is off, when its thread is ignored, or when the thread is already inside a hook (the
 * reentrancy guard t->busy). An ignored, paused or draining thread's events go through the
 * slow paths below (memscope's own blocks, tr_own.c). Python frames are walked only with the GIL held: always for MEM
 * and OBJ (CPython's contract), after PyGILState_Check() for RAW and numpy.
 *
 * Full mode (every event into the thread's rec1 stream) is inlined into the hooks
 * (tr_record.h); the other modes are in tr_modes.c, their live map in tr_map.c.
 */
#include "tr_record.h"

/* Read relaxed by hooks; written by start/stop with the GIL held. */
int tr_enabled;
int tr_mode;
/* Written by start (GIL held) before hooks are installed; read-only afterwards. */
int64_t tr_sample_bytes = 65536;
uint64_t tr_max_buffer_bytes = 512ull << 20;

/* The allocators we chain to; written by tr_hooks_install (GIL held) before ours are set,
 * never cleared (a hook still running after stop keeps working). */
static PyMemAllocatorEx tr_orig[3];
static int tr_installed; /* GIL */

/* Bookkeeping memory comes straight from libc, which no PyMem hook sees (so it is never
 * traced and never re-enters a hook), and works before start() and in a forked child. */
void *tr_raw_alloc(size_t size)
{
    return malloc(size);
}
void *tr_raw_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}
void *tr_raw_realloc(void *p, size_t size)
{
    return realloc(p, size);
}
void tr_raw_free(void *p)
{
    free(p);
}

unsigned long tr_nogil_events; /* (counted on 3.11 only: TR_CAN_REUSE_STAMPS) */
/* Incremented by every drain and start (GIL). */
unsigned long tr_drain_epoch;

/* Off when other recorders (native mode) stamp events tr_record.h does not count. Written
 * by start (GIL) before tr_enabled is set. */
int tr_reuse_stamps = 1;

/* ------------------------------------------------------------------ the hooks */

#define TR_RECORD_ALLOC(t, kind, dom, p, size)                                                     \
    do {                                                                                           \
        if (__builtin_expect(tr_mode == TR_MODE_FULL, 1)) {                                        \
            tr_full_alloc(t, kind, dom, p, size);                                                  \
        } else {                                                                                   \
            tr_record_alloc(t, kind, dom, p, size);                                                \
        }                                                                                          \
    } while (0)

/* ---- memscope's own events (tr_own.c): out of line, never on the program's path ---- */
static __attribute__((noinline)) void *tr_own_malloc(int dom, size_t size, size_t n, int zero)
{
    tr_thread_t *t = tr_enter_own();
    void *p = zero ? tr_orig[dom].calloc(tr_orig[dom].ctx, n, size)
                   : tr_orig[dom].malloc(tr_orig[dom].ctx, size);
    if (t != NULL) {
        if (p != NULL) {
            tr_own_add(p);
        }
        t->busy = 0;
    }
    return p;
}

/* A free by memscope's own thread: dropped when the block is memscope's; recorded when the
 * publisher (not paused, not draining) frees a block of the program. */
static __attribute__((noinline)) void tr_own_free(int dom, void *p)
{
    tr_thread_t *t = tr_enter_own();
    if (t == NULL) {
        tr_orig[dom].free(tr_orig[dom].ctx, p);
        return;
    }
    if (tr_own_remove(p) || t->ignored != TR_IGNORED) {
        tr_orig[dom].free(tr_orig[dom].ctx, p);
    } else if (tr_mode == TR_MODE_FULL) {
        int gil = tr_event_gil((unsigned)dom);
        uint64_t tick = tr_stamp_free(t, gil);
        tr_orig[dom].free(tr_orig[dom].ctx, p);
        tr_full_free(t, (unsigned)dom, p, tick, gil);
    } else {
        tr_record_free(t, (unsigned)dom, p);
        tr_orig[dom].free(tr_orig[dom].ctx, p);
    }
    t->busy = 0;
}

static __attribute__((noinline)) void *tr_own_realloc(int dom, void *old, size_t size)
{
    tr_thread_t *t = tr_enter_own();
    if (t == NULL) {
        return tr_orig[dom].realloc(tr_orig[dom].ctx, old, size);
    }
    int own = old == NULL || tr_own_remove(old);
    int record_old = !own && t->ignored == TR_IGNORED && tr_mode == TR_MODE_FULL;
    int gil = record_old && tr_event_gil((unsigned)dom);
    uint64_t tick = record_old ? tr_stamp_free(t, gil) : 0;
    void *p = tr_orig[dom].realloc(tr_orig[dom].ctx, old, size);
    if (p == NULL) {
        if (own && old != NULL) {
            tr_own_add(old); /* failed: the old block is still there, still ours */
        }
    } else {
        if (record_old) { /* a program block the publisher resized: it ends here */
            tr_full_free(t, (unsigned)dom, old, tick, gil);
        }
        tr_own_add(p);
    }
    t->busy = 0;
    return p;
}

/* The guard is taken before calling the previous allocator: pymalloc hands big requests
 * to PyMem_RawMalloc, and that inner call must not be recorded a second time. */
#define TR_DEFINE_HOOKS(NAME, DOM)                                                                 \
    static void *NAME##_malloc(void *ctx, size_t size)                                             \
    {                                                                                              \
        tr_thread_t *t = tr_enter();                                                               \
        if (__builtin_expect(t == NULL, 0)) {                                                      \
            return tr_own_malloc(DOM, size, 0, 0);                                                 \
        }                                                                                          \
        void *p = tr_orig[DOM].malloc(tr_orig[DOM].ctx, size);                                     \
        if (t != NULL) {                                                                           \
            if (p != NULL) {                                                                       \
                TR_RECORD_ALLOC(t, TR_ALLOC, DOM, p, size);                                        \
            }                                                                                      \
            t->busy = 0;                                                                           \
        }                                                                                          \
        return p;                                                                                  \
    }                                                                                              \
    static void *NAME##_calloc(void *ctx, size_t n, size_t size)                                   \
    {                                                                                              \
        tr_thread_t *t = tr_enter();                                                               \
        if (__builtin_expect(t == NULL, 0)) {                                                      \
            return tr_own_malloc(DOM, size, n, 1);                                                 \
        }                                                                                          \
        void *p = tr_orig[DOM].calloc(tr_orig[DOM].ctx, n, size);                                  \
        if (t != NULL) {                                                                           \
            if (p != NULL) {                                                                       \
                TR_RECORD_ALLOC(t, TR_CALLOC, DOM, p, n * size);                                   \
            }                                                                                      \
            t->busy = 0;                                                                           \
        }                                                                                          \
        return p;                                                                                  \
    }                                                                                              \
    static void *NAME##_realloc(void *ctx, void *old, size_t size)                                 \
    {                                                                                              \
        tr_thread_t *t = tr_enter();                                                               \
        if (__builtin_expect(t == NULL, 0)) {                                                      \
            return tr_own_realloc(DOM, old, size);                                                 \
        }                                                                                          \
        /* stamped before: the old block may be someone else's once realloc returns (and  \
         * counted when without the GIL, so no reused stamp predates that free) */        \
        int gil = t != NULL && tr_event_gil(DOM);                                                  \
        uint64_t tick = t != NULL ? tr_stamp_free(t, gil) : 0;                                     \
        void *p = tr_orig[DOM].realloc(tr_orig[DOM].ctx, old, size);                               \
        if (t != NULL) {                                                                           \
            if (p != NULL && old != NULL) {                                                        \
                tr_record_realloc(t, DOM, gil, p, old, size, tick);                                \
            } else if (p != NULL) {                                                                \
                TR_RECORD_ALLOC(t, TR_ALLOC, DOM, p, size);                                        \
            }                                                                                      \
            t->busy = 0;                                                                           \
        }                                                                                          \
        return p;                                                                                  \
    }                                                                                              \
    static void NAME##_free(void *ctx, void *p)                                                    \
    {                                                                                              \
        if (p != NULL) {                                                                           \
            tr_thread_t *t = tr_enter();                                                           \
            if (t != NULL) {                                                                       \
                if (__builtin_expect(tr_mode == TR_MODE_FULL, 1)) {                                \
                    /* stamped before the free (once freed, another thread may get the    \
                     * address back), written after it: the free's own work then hides    \
                     * the latency of the clock read */        \
                    int gil = tr_event_gil(DOM);                                                   \
                    uint64_t tick = tr_stamp_free(t, gil);                                         \
                    tr_orig[DOM].free(tr_orig[DOM].ctx, p);                                        \
                    tr_full_free(t, DOM, p, tick, gil);                                            \
                } else {                                                                           \
                    tr_record_free(t, DOM, p);                                                     \
                    tr_orig[DOM].free(tr_orig[DOM].ctx, p);                                        \
                }                                                                                  \
                t->busy = 0;                                                                       \
                return;                                                                            \
            }                                                                                      \
            tr_own_free(DOM, p);                                                                   \
            return;                                                                                \
        }                                                                                          \
        tr_orig[DOM].free(tr_orig[DOM].ctx, p);                                                    \
    }

TR_DEFINE_HOOKS(hk_raw, TR_RAW)
TR_DEFINE_HOOKS(hk_mem, TR_MEM)
TR_DEFINE_HOOKS(hk_obj, TR_OBJ)

#define TR_OURS(NAME) {NULL, NAME##_malloc, NAME##_calloc, NAME##_realloc, NAME##_free}
static PyMemAllocatorEx tr_ours[3] = {TR_OURS(hk_raw), TR_OURS(hk_mem), TR_OURS(hk_obj)};
static const PyMemAllocatorDomain tr_domains[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM,
                                                   PYMEM_DOMAIN_OBJ};

int tr_hooks_install(void)
{
    if (tr_installed) {
        return 0;
    }
    for (int d = 0; d < 3; d++) {
        PyMem_GetAllocator(tr_domains[d], &tr_orig[d]);
    }
    for (int d = 0; d < 3; d++) {
        PyMem_SetAllocator(tr_domains[d], &tr_ours[d]);
    }
    tr_installed = 1;
    return 0;
}

/* Restores the previous allocators, unless someone has wrapped ours since (then ours stay,
 * forwarding with tr_enabled off). */
void tr_hooks_uninstall(void)
{
    if (!tr_installed) {
        return;
    }
    int all = 1;
    for (int d = 0; d < 3; d++) {
        PyMemAllocatorEx now;
        PyMem_GetAllocator(tr_domains[d], &now);
        all &= now.malloc == tr_ours[d].malloc;
    }
    if (all) {
        for (int d = 0; d < 3; d++) {
            PyMem_SetAllocator(tr_domains[d], &tr_orig[d]);
        }
        tr_installed = 0;
    }
}
