/* memscope tracer: the sampled and aggregated capture modes, and their drain side.
 *
 *   sampled     allocations are sampled by byte volume (mean tr_sample_bytes between
 *               samples); a free is recorded only for a sampled block (a filter of counters
 *               makes the common "not sampled" answer lock-free).
 *   aggregated  allocations wait in a live map; a block freed before it has survived one
 *               full drain interval is folded into per-(thread, stack, domain) counters
 *               (`aggregates` rows); survivors are promoted to real alloc events at the
 *               drain, and their frees are recorded. The map also gives exact current and
 *               peak bytes.
 * tr_record_alloc/realloc/free dispatch an event to its mode (full mode's hooks inline their
 * own path, tr_record.h).
 */
#include "tr_map.h"
#include "tr_record.h"

#include <math.h>

/* Aggregated-mode maps: tr_map_gil holds MEM/OBJ blocks (protected by the GIL);
 * tr_map_locked holds RAW/numpy blocks in aggregated mode and every sampled block in sampled
 * mode (protected by tr_map_lock). */
static tr_map_t tr_map_gil, tr_map_locked;
static pthread_mutex_t tr_map_lock = PTHREAD_MUTEX_INITIALIZER;
/* Peak of tr_map_gil.bytes + tr_map_locked.bytes (atomic max). */
static uint64_t tr_peak_bytes;

/* Sampled mode: per-slot counts of sampled blocks whose address hashes there (atomics). */
#define TR_FILTER_SLOTS (1u << 16)
static uint16_t tr_sample_filter[TR_FILTER_SLOTS];

static inline void tr_update_peak(void)
{
    uint64_t now = __atomic_load_n(&tr_map_gil.bytes, __ATOMIC_RELAXED) +
                   __atomic_load_n(&tr_map_locked.bytes, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&tr_peak_bytes, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&tr_peak_bytes, &peak, now, 1,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* ------------------------------------------------------------------ aggregates */

typedef struct {
    uint32_t serial; /* the allocating thread */
    uint32_t stack;
    uint8_t domain, used;
    uint64_t count, bytes;
} tr_agg_t;

typedef struct {
    tr_agg_t *slots;
    uint64_t mask, count;
} tr_agg_table_t;

/* tr_agg_gil: folds of MEM/OBJ blocks (GIL); tr_agg_locked: RAW/numpy (tr_map_lock). */
static tr_agg_table_t tr_agg_gil, tr_agg_locked;

static void tr_agg_add(tr_agg_table_t *a, uint32_t serial, uint32_t stack, unsigned domain,
                       uint64_t size)
{
    if ((a->count + 1) * 2 > a->mask + 1) {
        uint64_t cap = a->mask ? (a->mask + 1) * 2 : 1024;
        tr_agg_t *slots = tr_raw_calloc(cap, sizeof(tr_agg_t));
        if (slots == NULL) {
            return; /* the fold is lost; current/peak stay exact */
        }
        for (uint64_t i = 0; a->slots != NULL && i <= a->mask; i++) {
            if (a->slots[i].used) {
                uint64_t h = tr_hash_addr(a->slots[i].serial ^ ((uint64_t)a->slots[i].stack << 8) ^
                                          a->slots[i].domain) &
                             (cap - 1);
                while (slots[h].used) {
                    h = (h + 1) & (cap - 1);
                }
                slots[h] = a->slots[i];
            }
        }
        tr_raw_free(a->slots);
        a->slots = slots;
        a->mask = cap - 1;
    }
    uint64_t h = tr_hash_addr(serial ^ ((uint64_t)stack << 8) ^ domain) & a->mask;
    while (a->slots[h].used && !(a->slots[h].serial == serial && a->slots[h].stack == stack &&
                                 a->slots[h].domain == domain)) {
        h = (h + 1) & a->mask;
    }
    tr_agg_t *s = &a->slots[h];
    if (!s->used) {
        *s = (tr_agg_t){serial, stack, (uint8_t)domain, 1, 0, 0};
        a->count++;
    }
    s->count++;
    s->bytes += size;
}

/* Aggregated mode, GIL domains: folds go first to the slot of their stack id, which the
 * first (thread, domain) to fold there in a drain interval claims (a stack is nearly always
 * allocated from by one thread in one domain); the others go to tr_agg_gil. An indexed slot
 * is cheaper than hashing the key on every free. Protected by the GIL. */
static tr_agg_t *tr_fold;         /* indexed by stack id */
static uint32_t tr_fold_cap;      /* slots in tr_fold */
static uint32_t *tr_fold_claimed; /* stack ids of the claimed slots, to emit and clear */
static uint32_t tr_fold_n, tr_fold_claimed_cap;

/* Stacks with larger ids fold into tr_agg_gil only: the array stays within 32 MiB. */
#define TR_FOLD_MAX_SLOTS (1u << 20)

/* Grows tr_fold to hold `stack`; returns 0 when it may not or memory ran out. The new array
 * comes from calloc (fresh zero pages, not zeroed here in the hook); the old one is copied. */
static int tr_fold_grow(uint32_t stack)
{
    if (stack >= TR_FOLD_MAX_SLOTS) {
        return 0;
    }
    uint32_t cap = tr_fold_cap ? tr_fold_cap : 1024;
    while (cap <= stack) {
        cap *= 2;
    }
    tr_agg_t *grown = tr_raw_calloc(cap, sizeof(tr_agg_t));
    if (grown == NULL) {
        return 0;
    }
    if (tr_fold != NULL) {
        memcpy(grown, tr_fold, (size_t)tr_fold_cap * sizeof(tr_agg_t));
        tr_raw_free(tr_fold);
    }
    tr_fold = grown;
    tr_fold_cap = cap;
    return 1;
}

static void tr_fold_gil(uint32_t serial, uint32_t stack, unsigned domain, uint64_t size)
{
    if (__builtin_expect(stack < tr_fold_cap, 1) || tr_fold_grow(stack)) {
        tr_agg_t *f = &tr_fold[stack];
        if (__builtin_expect(f->used && f->serial == serial && f->domain == domain, 1)) {
            f->count++;
            f->bytes += size;
            return;
        }
        if (!f->used) {
            if (tr_fold_n == tr_fold_claimed_cap) {
                uint32_t cap = tr_fold_claimed_cap ? tr_fold_claimed_cap * 2 : 256;
                uint32_t *grown = tr_raw_realloc(tr_fold_claimed, (size_t)cap * sizeof(uint32_t));
                if (grown == NULL) {
                    tr_agg_add(&tr_agg_gil, serial, stack, domain, size);
                    return;
                }
                tr_fold_claimed = grown;
                tr_fold_claimed_cap = cap;
            }
            tr_fold_claimed[tr_fold_n++] = stack;
            *f = (tr_agg_t){serial, stack, (uint8_t)domain, 1, 1, size};
            return;
        }
    }
    tr_agg_add(&tr_agg_gil, serial, stack, domain, size);
}

static void tr_fold_clear(void)
{
    tr_raw_free(tr_fold);
    tr_raw_free(tr_fold_claimed);
    tr_fold = NULL;
    tr_fold_claimed = NULL;
    tr_fold_cap = tr_fold_n = tr_fold_claimed_cap = 0;
}

static double tr_uniform(tr_thread_t *t)
{
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return ((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

static int64_t tr_next_sample_gap(tr_thread_t *t)
{
    double u = tr_uniform(t);
    int64_t gap = (int64_t)(-log(1.0 - u) * (double)tr_sample_bytes);
    return gap > 0 ? gap : 1;
}

static void tr_sampled_alloc(tr_thread_t *t, unsigned kind, unsigned domain, uint64_t addr,
                             uint64_t size)
{
    t->sample_left -= (int64_t)size;
    if (t->sample_left > 0) {
        return;
    }
    while (t->sample_left <= 0) {
        t->sample_left += tr_next_sample_gap(t);
    }
    int gil = tr_event_gil(domain);
    uint32_t stack = TR_EVENT_STACK(t, gil);
    tr_live_t e = tr_live_make(addr, size, domain, 1, 0, stack, t->serial);
    pthread_mutex_lock(&tr_map_lock);
    int ok = tr_map_put(&tr_map_locked, &e) == 0;
    pthread_mutex_unlock(&tr_map_lock);
    if (ok) {
        __atomic_fetch_add(&tr_sample_filter[tr_hash_addr(addr) & (TR_FILTER_SLOTS - 1)], 1,
                           __ATOMIC_RELAXED);
    }
    tr_emit(t, kind, domain, addr, 0, size, stack, 1, tr_stamp(t, gil));
}

/* Returns 1 when addr was a sampled block (now forgotten). */
static int tr_sampled_forget(uint64_t addr)
{
    uint16_t *slot = &tr_sample_filter[tr_hash_addr(addr) & (TR_FILTER_SLOTS - 1)];
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) == 0) {
        return 0;
    }
    tr_live_t e;
    pthread_mutex_lock(&tr_map_lock);
    int found = tr_map_take(&tr_map_locked, addr, &e);
    pthread_mutex_unlock(&tr_map_lock);
    if (found) {
        __atomic_fetch_sub(slot, 1, __ATOMIC_RELAXED);
    }
    return found;
}

/* Aggregated mode, GIL domains: a small direct-mapped table of the most recent pending
 * allocations in front of tr_map_gil. Most blocks die young, so most frees are answered
 * from this cache-resident table; an entry evicted by a newer allocation moves to the map.
 * Protected by the GIL. */
#define TR_YOUNG_SLOTS 65536
static tr_live_t tr_young[TR_YOUNG_SLOTS]; /* 2 MiB of BSS, touched only when used */
static int tr_young_used;                  /* GIL */

/* Neighbouring blocks (allocators hand out consecutive addresses) land in neighbouring
 * slots, so the table is walked the way memory is allocated and stays in cache; windows of
 * 256 KiB are scattered by a hash of their number. */
static inline tr_live_t *tr_young_slot(uint64_t addr)
{
    uint64_t window = tr_hash_addr(addr >> 18);
    return &tr_young[((addr >> 4) + window) & (TR_YOUNG_SLOTS - 1)];
}

/* Puts a pending GIL-domain allocation into the young table; an older entry in its slot moves
 * to the map. The fields are written one by one: an entry built on the stack and copied was
 * measured to stall (its copy reads what was just stored, in other widths). */
static int tr_gil_put(uint64_t addr, uint64_t size, unsigned domain, uint64_t tick, uint32_t stack,
                      uint32_t serial)
{
    tr_live_t *y = tr_young_slot(addr);
    uint64_t bytes = tr_map_gil.bytes;
    if (y->addr == addr) { /* a block whose free we missed: replace it */
        bytes -= y->size;
        y->addr = 0;
    }
    if (y->addr != 0) {
        /* evict into the map (which counts its bytes itself) */
        tr_live_t old = *y;
        __atomic_store_n(&tr_map_gil.bytes, bytes - old.size, __ATOMIC_RELAXED);
        if (tr_map_put(&tr_map_gil, &old) < 0) {
            /* no memory: keep the old one, record the new one directly */
            __atomic_store_n(&tr_map_gil.bytes, tr_map_gil.bytes + old.size, __ATOMIC_RELAXED);
            return -1;
        }
        bytes = tr_map_gil.bytes;
    }
    /* (a stale entry for this address in the map would mean a missed free; frees are not
     * missed while tracing, so the map is not searched here) */
    y->addr = addr;
    y->word = tr_live_word(size, domain, 0);
    y->tick = tick;
    y->stack = stack;
    y->serial = serial;
    tr_young_used = 1;
    __atomic_store_n(&tr_map_gil.bytes, bytes + size, __ATOMIC_RELAXED);
    return 0;
}

/* Aggregated mode: forget addr; fold it when it was still pending, else record its free.
 * `quiet`: the free comes from an ignored thread, recorded only for blocks we know. */
static void tr_agg_free(tr_thread_t *t, unsigned domain, uint64_t addr, uint64_t tick, int quiet)
{
    /* tick 0: read the clock only if an event is written (folded frees need no time) */
    tr_live_t e;
    int found;
    if (tr_domain_gil(domain)) {
        tr_live_t *y = tr_young_slot(addr);
        if (__builtin_expect(y->addr == addr, 1)) {
            /* the common case, read field by field: a pending block that dies young */
            uint64_t word = y->word, size = word & TR_WORD_SIZE_MASK;
            y->addr = 0;
            __atomic_store_n(&tr_map_gil.bytes, tr_map_gil.bytes - size, __ATOMIC_RELAXED);
            if (__builtin_expect((word >> TR_WORD_FLAGS_SHIFT) == 0, 1)) {
                tr_fold_gil(y->serial, y->stack, (unsigned)(word >> TR_WORD_DOMAIN_SHIFT) & 0xFF,
                            size);
                return;
            }
            e = *y;
            e.addr = addr;
            found = 1;
        } else {
            found = tr_map_take(&tr_map_gil, addr, &e);
            if (found && !e.emitted && !e.pinned) {
                tr_fold_gil(e.serial, e.stack, e.domain, e.size);
            }
        }
    } else {
        pthread_mutex_lock(&tr_map_lock);
        found = tr_map_take(&tr_map_locked, addr, &e);
        if (found && !e.emitted && !e.pinned) {
            tr_agg_add(&tr_agg_locked, e.serial, e.stack, e.domain, e.size);
        }
        pthread_mutex_unlock(&tr_map_lock);
    }
    if (found && e.pinned && !e.emitted) {
        /* a pinned block dies before its promotion: its life is sent as two events. The
         * allocation goes back in time in the thread's stream: the block keeps its largest
         * tick so far for the drain (tr_thread_t.block_max_tick) */
        if (t->w.tick > t->block_max_tick) {
            t->block_max_tick = t->w.tick;
        }
        tr_emit(t, TR_ALLOC, e.domain, addr, 0, e.size, e.stack, 1, e.tick);
        e.emitted = 1;
    }
    if (found ? e.emitted : !quiet) {
        tr_emit(t, TR_FREE, domain, addr, 0, 0, 0, 0,
                tick ? tick : tr_stamp_free(t, tr_event_gil(domain)));
    }
}

static void tr_agg_alloc(tr_thread_t *t, unsigned domain, uint64_t addr, uint64_t size)
{
    int gil = tr_event_gil(domain);
    uint64_t tick = tr_stamp(t, gil);
    uint32_t stack = TR_EVENT_STACK(t, gil);
    int rc;
    if (tr_domain_gil(domain)) {
        rc = tr_gil_put(addr, size, domain, tick, stack, t->serial);
    } else {
        tr_live_t e = tr_live_make(addr, size, domain, 0, tick, stack, t->serial);
        pthread_mutex_lock(&tr_map_lock);
        rc = tr_map_put(&tr_map_locked, &e);
        pthread_mutex_unlock(&tr_map_lock);
    }
    if (rc < 0) { /* no room to wait: record it now */
        tr_emit(t, TR_ALLOC, domain, addr, 0, size, stack, 1, tick);
        return;
    }
    tr_update_peak();
}

/* Hooks-only mode: what an allocation costs every mode before anything is stored. */
static void tr_hooks_only_alloc(tr_thread_t *t, unsigned domain)
{
    int gil = tr_event_gil(domain);
    uint64_t tick = tr_stamp(t, gil);
    uint32_t stack = TR_EVENT_STACK(t, gil);
    __asm__ volatile("" : : "r"(tick), "r"(stack)); /* computed, as if they were stored */
}

void tr_record_alloc(tr_thread_t *t, unsigned kind, unsigned domain, void *ptr, size_t size)
{
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    switch (tr_mode) {
    case TR_MODE_FULL:
        tr_full_alloc(t, kind, domain, ptr, size);
        break;
    case TR_MODE_SAMPLED:
        tr_sampled_alloc(t, kind, domain, addr, size);
        break;
    case TR_MODE_AGGREGATED:
        tr_agg_alloc(t, domain, addr, size);
        break;
    default:
        tr_hooks_only_alloc(t, domain);
        break;
    }
}

/* A successful realloc of `old` (not NULL) into `ptr`, stamped with `tick` taken before it. */
void tr_record_realloc(tr_thread_t *t, unsigned domain, int gil, void *ptr, void *old, size_t size,
                       uint64_t tick)
{
    uint64_t addr = (uint64_t)(uintptr_t)ptr, old_addr = (uint64_t)(uintptr_t)old;
    t->stamp_reuse = 0; /* the new block's stamp (and later ones) at or after `tick` */
    switch (tr_mode) {
    case TR_MODE_FULL:
        tr_emit(t, TR_REALLOC, domain, addr, old_addr, size, TR_EVENT_STACK(t, gil), 1, tick);
        break;
    case TR_MODE_SAMPLED:
        if (tr_sampled_forget(old_addr)) {
            tr_emit(t, TR_FREE, domain, old_addr, 0, 0, 0, 0, tick);
        }
        tr_sampled_alloc(t, TR_ALLOC, domain, addr, size);
        break;
    case TR_MODE_AGGREGATED:
        tr_agg_free(t, domain, old_addr, tick, 0);
        tr_agg_alloc(t, domain, addr, size);
        break;
    default:
        tr_hooks_only_alloc(t, domain);
        break;
    }
}

void tr_record_free(tr_thread_t *t, unsigned domain, void *ptr)
{
    uint64_t addr = (uint64_t)(uintptr_t)ptr;
    switch (tr_mode) {
    case TR_MODE_FULL: {
        /* the publisher's frees of the program's blocks are recorded too, or those blocks
         * would look leaked (its frees of its own blocks never get here: tr_own.c) */
        int gil = tr_event_gil(domain);
        tr_full_free(t, domain, ptr, tr_stamp_free(t, gil), gil);
        break;
    }
    case TR_MODE_SAMPLED:
        if (tr_sampled_forget(addr)) {
            tr_emit(t, TR_FREE, domain, addr, 0, 0, 0, 0, tr_stamp_free(t, tr_event_gil(domain)));
        }
        break;
    case TR_MODE_AGGREGATED:
        tr_agg_free(t, domain, addr, 0, t->ignored);
        break;
    default: /* hooks only: a free reads nothing (aggregated mode's folded frees do not) */
        break;
    }
}

/* ------------------------------------------------------------------ drain side */

void tr_hooks_reset_maps(void)
{
    tr_drain_epoch++;
    if (tr_young_used) {
        memset(tr_young, 0, sizeof tr_young);
        tr_young_used = 0;
    }
    tr_map_clear(&tr_map_gil);
    pthread_mutex_lock(&tr_map_lock);
    tr_map_clear(&tr_map_locked);
    tr_raw_free(tr_agg_locked.slots);
    memset(&tr_agg_locked, 0, sizeof tr_agg_locked);
    pthread_mutex_unlock(&tr_map_lock);
    tr_raw_free(tr_agg_gil.slots);
    memset(&tr_agg_gil, 0, sizeof tr_agg_gil);
    tr_fold_clear();
    memset(tr_sample_filter, 0, sizeof tr_sample_filter);
    tr_peak_bytes = 0;
}

static int tr_agg_row(PyObject *rare, const tr_agg_t *s, int64_t now_ns);

static int tr_agg_rows(PyObject *rare, const tr_agg_table_t *a, int64_t now_ns)
{
    for (uint64_t i = 0; a->slots != NULL && i <= a->mask; i++) {
        if (a->slots[i].used && tr_agg_row(rare, &a->slots[i], now_ns) < 0) {
            return -1;
        }
    }
    return 0;
}

static void tr_agg_empty(tr_agg_table_t *a)
{
    if (a->slots != NULL) {
        memset(a->slots, 0, (a->mask + 1) * sizeof(tr_agg_t));
    }
    a->count = 0;
}

static int tr_agg_row(PyObject *rare, const tr_agg_t *s, int64_t now_ns)
{
    static const char *const names[] = {"ts_ns",  "tid",         "stack_id",
                                        "domain", "alloc_count", "alloc_bytes"};
    PyObject *values[] = {PyLong_FromLongLong(now_ns),
                          PyLong_FromUnsignedLongLong(tr_serial_tid(s->serial)),
                          PyLong_FromUnsignedLong(s->stack),
                          PyLong_FromLong(s->domain),
                          PyLong_FromUnsignedLongLong(s->count),
                          PyLong_FromUnsignedLongLong(s->bytes)};
    return tr_append_row(rare, "aggregates", names, values, 6);
}

/* Rows of the claimed tr_fold slots (GIL). */
static int tr_fold_rows(PyObject *rare, int64_t now_ns)
{
    for (uint32_t i = 0; i < tr_fold_n; i++) {
        if (tr_agg_row(rare, &tr_fold[tr_fold_claimed[i]], now_ns) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Releases the claimed tr_fold slots once their rows are made. */
static void tr_fold_empty(void)
{
    for (uint32_t i = 0; i < tr_fold_n; i++) {
        memset(&tr_fold[tr_fold_claimed[i]], 0, sizeof(tr_agg_t));
    }
    tr_fold_n = 0;
}

static tr_agg_table_t tr_agg_take_locked(void)
{
    pthread_mutex_lock(&tr_map_lock);
    tr_agg_table_t copy = tr_agg_locked;
    memset(&tr_agg_locked, 0, sizeof tr_agg_locked);
    pthread_mutex_unlock(&tr_map_lock);
    return copy;
}

int tr_hooks_emit_aggregates(PyObject *rare, int64_t now_ns, uint64_t *current, uint64_t *peak)
{
    *current = __atomic_load_n(&tr_map_gil.bytes, __ATOMIC_RELAXED) +
               __atomic_load_n(&tr_map_locked.bytes, __ATOMIC_RELAXED);
    *peak = __atomic_load_n(&tr_peak_bytes, __ATOMIC_RELAXED);
    if (*peak < *current) {
        *peak = *current;
    }
    /* the GIL's tables are emptied only once all their rows are made: on failure the
     * caller drops the rows, and the counts stay for the next drain */
    if (tr_fold_rows(rare, now_ns) < 0 || tr_agg_rows(rare, &tr_agg_gil, now_ns) < 0) {
        return -1;
    }
    tr_fold_empty();
    tr_agg_empty(&tr_agg_gil);
    tr_agg_table_t locked = tr_agg_take_locked();
    int rc = tr_agg_rows(rare, &locked, now_ns);
    tr_raw_free(locked.slots);
    return rc;
}

typedef struct {
    uint64_t tid; /* a thread serial until the chunk is built */
    uint64_t tick, addr, size;
    uint32_t stack;
    uint8_t domain;
} tr_promo_t;

static int tr_promo_cmp(const void *pa, const void *pb)
{
    const tr_promo_t *a = pa, *b = pb;
    if (a->tid != b->tid) {
        return a->tid < b->tid ? -1 : 1;
    }
    return a->tick < b->tick ? -1 : a->tick > b->tick;
}

/* Tick of the previous promotion pass (GIL): entries older than it have survived a whole
 * drain interval. */
static uint64_t tr_promote_cutoff;

static size_t tr_collect(tr_map_t *m, uint64_t cutoff, tr_promo_t **out, size_t *n, size_t *cap)
{
    for (uint64_t i = 0; m->slots != NULL && i <= m->mask; i++) {
        tr_live_t *e = &m->slots[i];
        if (e->addr == 0 || e->emitted || (e->tick >= cutoff && !e->pinned)) {
            continue;
        }
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 1024;
            tr_promo_t *grown = PyMem_RawRealloc(*out, ncap * sizeof(tr_promo_t));
            if (grown == NULL) {
                return 0; /* the rest stay pending until the next drain */
            }
            *out = grown;
            *cap = ncap;
        }
        (*out)[(*n)++] =
            (tr_promo_t){e->serial, e->tick, e->addr, e->size, e->stack, (uint8_t)e->domain};
        e->emitted = 1;
    }
    return *n;
}

static PyObject *tr_promo_chunk(const tr_promo_t *p, size_t n, const tr_clock_t *clock)
{
    PyObject *cols = PyDict_New();
    if (cols == NULL) {
        return NULL;
    }
    static const char *const names[] = {"ts_ns",       "kind", "domain",  "address",
                                        "old_address", "size", "stack_id"};
    static const size_t widths[] = {8, 1, 1, 8, 8, 8, 4};
    for (int c = 0; c < 7; c++) {
        PyObject *buf = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * widths[c]));
        if (buf == NULL || PyDict_SetItemString(cols, names[c], buf) < 0) {
            Py_XDECREF(buf);
            Py_DECREF(cols);
            return NULL;
        }
        char *d = PyBytes_AS_STRING(buf);
        for (size_t i = 0; i < n; i++) {
            int64_t ts = tr_tick_to_ns(clock, p[i].tick);
            uint64_t v = c == 0   ? (uint64_t)ts
                         : c == 1 ? TR_ALLOC
                         : c == 2 ? p[i].domain
                         : c == 3 ? p[i].addr
                         : c == 4 ? 0
                         : c == 5 ? p[i].size
                                  : p[i].stack;
            memcpy(d + i * widths[c], &v, widths[c]); /* little-endian hosts */
        }
        Py_DECREF(buf);
    }
    PyObject *chunk = Py_BuildValue("{s:K,s:n,s:s,s:N}", "tid",
                                    (unsigned long long)tr_serial_tid((uint32_t)p[0].tid), "n",
                                    (Py_ssize_t)n, "enc", "cols1", "cols", cols);
    return chunk;
}

/* Aggregated mode: turns allocations that survived a drain interval into alloc events
 * (cols1 chunks, one per thread, appended to `chunks`). Returns the event count or -1. */
int64_t tr_hooks_promote(PyObject *chunks, const tr_clock_t *clock, int everything)
{
    uint64_t cutoff = everything ? UINT64_MAX : tr_promote_cutoff;
    tr_promote_cutoff = tr_tick();
    tr_promo_t *all = NULL;
    size_t n = 0, cap = 0;
    tr_map_t young = {tr_young, TR_YOUNG_SLOTS - 1, 1, 0};
    tr_collect(&young, cutoff, &all, &n, &cap);
    tr_collect(&tr_map_gil, cutoff, &all, &n, &cap);
    pthread_mutex_lock(&tr_map_lock);
    tr_collect(&tr_map_locked, cutoff, &all, &n, &cap);
    pthread_mutex_unlock(&tr_map_lock);
    if (n == 0) {
        PyMem_RawFree(all);
        return 0;
    }
    qsort(all, n, sizeof(tr_promo_t), tr_promo_cmp);
    size_t start = 0;
    while (start < n) {
        size_t stop = start + 1;
        while (stop < n && all[stop].tid == all[start].tid) {
            stop++;
        }
        PyObject *chunk = tr_promo_chunk(all + start, stop - start, clock);
        if (chunk == NULL || PyList_Append(chunks, chunk) < 0) {
            Py_XDECREF(chunk);
            PyMem_RawFree(all);
            return -1;
        }
        Py_DECREF(chunk);
        start = stop;
    }
    PyMem_RawFree(all);
    return (int64_t)n;
}

void tr_hooks_map_stats(uint64_t *live, uint64_t *slots)
{
    *live = tr_map_gil.count + tr_map_locked.count;
    *slots = (tr_map_gil.slots ? tr_map_gil.mask + 1 : 0) +
             (tr_map_locked.slots ? tr_map_locked.mask + 1 : 0);
}

int tr_hooks_pin(uint64_t addr, uint64_t size, tr_thread_t *t)
{
    if (tr_mode == TR_MODE_FULL) {
        return 1; /* every free is recorded anyway */
    }
    if (tr_mode == TR_MODE_HOOKS_ONLY) {
        return 0; /* nothing is recorded */
    }
    if (tr_mode == TR_MODE_AGGREGATED) {
        tr_live_t *y = tr_young_slot(addr);
        tr_live_t *e = y->addr == addr ? y : tr_find(&tr_map_gil, addr);
        if (e != NULL) {
            e->pinned = 1;
            return 1;
        }
        pthread_mutex_lock(&tr_map_lock);
        e = tr_find(&tr_map_locked, addr);
        if (e != NULL) {
            e->pinned = 1;
        }
        pthread_mutex_unlock(&tr_map_lock);
        return e != NULL; /* 0: allocated before start (or already sent): its free is sent */
    }
    /* sampled: make it a sampled block now, with the caller's size and stack */
    pthread_mutex_lock(&tr_map_lock);
    int known = tr_find(&tr_map_locked, addr) != NULL;
    pthread_mutex_unlock(&tr_map_lock);
    if (!known) {
        tr_live_t e = tr_live_make(addr, size, TR_OBJ, 1, 0, tr_stack_current(t), t->serial);
        pthread_mutex_lock(&tr_map_lock);
        int ok = tr_map_put(&tr_map_locked, &e) == 0;
        pthread_mutex_unlock(&tr_map_lock);
        if (!ok) {
            return 0;
        }
        __atomic_fetch_add(&tr_sample_filter[tr_hash_addr(addr) & (TR_FILTER_SLOTS - 1)], 1,
                           __ATOMIC_RELAXED);
        tr_emit(t, TR_ALLOC, TR_OBJ, addr, 0, size, e.stack, 1, tr_tick());
    }
    return 1;
}

void tr_hooks_atfork_prepare(void)
{
    pthread_mutex_lock(&tr_map_lock);
}

void tr_hooks_atfork_parent(void)
{
    pthread_mutex_unlock(&tr_map_lock);
}

/* The child forgets the parent's live blocks: their events are the parent's to report. */
void tr_hooks_after_fork_child(void)
{
    pthread_mutex_init(&tr_map_lock, NULL);
    tr_hooks_reset_maps();
    tr_promote_cutoff = 0;
}
