/* Per-thread record buffers: chains of fixed-size blocks written by their thread's hooks and
 * drained by the publisher.
 *
 * A thread writes records into its current block and publishes each one with a release store
 * of its write position t->pos; when the block is full it takes a new block from the pool,
 * seals the old one (its `used` bytes and record count, then a release store of
 * block->next) and never touches it again.
 * Every block starts a fresh rec1 delta state, so a sealed block is shipped as one chunk
 * by a plain copy; only the block still being written is scanned to find where its last
 * whole record ends and what the delta state is there. The drain (GIL held,
 * serialized by tr_draining) copies the bytes published and recycles blocks whose `next` is
 * set and which it has read to the end. Hooks therefore never wait for the drain; they only
 * take tr_registry_lock for a moment when they need a new block. When the buffers hold
 * tr_max_buffer_bytes, a hook that needs a block drops its record and counts the drop
 * (reported in producer_stats: the policy is "never block the program, never drop silently").
 */
#include "tr_core.h"

#include <sys/mman.h>

/* The calling thread's state; NULL before its first event, &tr_dead_thread after exit. */
__thread tr_thread_t *tr_tls __attribute__((tls_model("initial-exec")));

/* A state that makes every hook skip: installed by the thread-exit destructor. */
static tr_thread_t tr_dead_thread = {.busy = 1, .ignored = 1};

/* Protects tr_threads, tr_pool, tr_pool_len, tr_blocks_in_use, tr_high_water_blocks and
 * tr_dead_events/tr_dead_drops. Taken by hooks only to get a block; reinitialized in a
 * forked child. */
static pthread_mutex_t tr_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_thread_t *tr_threads; /* every registered thread state */
static tr_block_t *tr_pool;     /* free blocks, linked through ->next */
static unsigned tr_pool_len;
static uint64_t tr_blocks_in_use;     /* blocks owned by threads (pending data) */
static uint64_t tr_high_water_blocks; /* max of tr_blocks_in_use since start/fork */
static uint64_t tr_dead_events;       /* events/drops of thread states already freed */
static uint64_t tr_dead_drops;
static uint64_t tr_attach_failures; /* threads that could not get a state (counted as drops) */
static uint64_t *tr_serial_tids;    /* serial -> tid of every state ever attached */
static uint32_t tr_n_serials, tr_cap_serials;

/* Written once by tr_buffers_init (GIL held, before any hook can run). */
static pthread_key_t tr_exit_key;
static int tr_key_ready;

/* Drained blocks and exited thread states waiting for the commit that says their records
 * are safely out (tr_buffers_commit); protected by tr_registry_lock. */
static tr_block_t **tr_pending_blocks;
static size_t tr_n_pending_blocks, tr_cap_pending_blocks;
static tr_thread_t **tr_pending_reaps;
static size_t tr_n_pending_reaps, tr_cap_pending_reaps;

/* Takes a block for a writer; tr_registry_lock must be held. */
static tr_block_t *tr_block_get_locked(void)
{
    if ((tr_blocks_in_use + 1) * TR_BLOCK_SIZE > tr_max_buffer_bytes) {
        return NULL;
    }
    tr_block_t *b = tr_arena_get(TR_SLOT_BLOCK);
    if (b == NULL) {
        return NULL;
    }
    b->next = NULL;
    b->used = 0;
    b->nrec = 0;
    tr_blocks_in_use++;
    if (tr_blocks_in_use > tr_high_water_blocks) {
        tr_high_water_blocks = tr_blocks_in_use;
    }
    return b;
}

static void tr_block_put_locked(tr_block_t *b)
{
    tr_blocks_in_use--;
    tr_arena_put(b);
}

static void tr_thread_exit(void *arg)
{
    tr_thread_t *t = arg;
    tr_tls = &tr_dead_thread;
    __atomic_store_n(&t->dead, 1, __ATOMIC_RELEASE);
}

int tr_buffers_init(void)
{
    if (!tr_key_ready) {
        if (pthread_key_create(&tr_exit_key, tr_thread_exit) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_key_create failed");
            return -1;
        }
        tr_key_ready = 1;
    }
    return 0;
}

int tr_buffers_arena(const char *dir)
{
    pthread_mutex_lock(&tr_registry_lock);
    int rc = tr_arena_init();
    if (rc == 0 && dir != NULL && dir[0] != '\0' && tr_arena_use_dir(dir) < 0) {
        rc = 1;
    }
    pthread_mutex_unlock(&tr_registry_lock);
    return rc;
}

tr_thread_t *tr_thread_attach(void)
{
    pthread_mutex_lock(&tr_registry_lock);
    if (tr_arena_init() < 0) { /* (a thread seen before the first start) */
        tr_attach_failures++;
        pthread_mutex_unlock(&tr_registry_lock);
        return NULL;
    }
    /* a thread slot is zeroed: every counter and state starts at 0 */
    tr_thread_t *t = tr_arena_get(TR_SLOT_THREAD);
    if (t == NULL) {
        tr_attach_failures++;
        pthread_mutex_unlock(&tr_registry_lock);
        return NULL;
    }
    t->cur = tr_block_get_locked();
    if (t->cur == NULL) {
        tr_attach_failures++;
        tr_arena_put(t);
        pthread_mutex_unlock(&tr_registry_lock);
        return NULL;
    }
    t->ident = (uint64_t)PyThread_get_thread_ident();
    t->rng = (t->ident ^ 0x9E3779B97F4A7C15ull) | 1;
    t->sample_left = tr_sample_bytes;
    t->dblock = t->cur;
    t->committed[0].block = t->committed[1].block = t->cur;
    t->next_all = tr_threads;
    tr_threads = t;
    if (tr_n_serials == tr_cap_serials) {
        uint32_t cap = tr_cap_serials ? tr_cap_serials * 2 : 256;
        uint64_t *grown = tr_raw_realloc(tr_serial_tids, cap * sizeof(uint64_t));
        if (grown != NULL) {
            tr_serial_tids = grown;
            tr_cap_serials = cap;
        }
    }
    /* (out of memory: serial 0's tid stands in; only aggregated-mode attribution suffers) */
    t->serial = tr_n_serials < tr_cap_serials ? tr_n_serials++ : 0;
    t->tid = (uint64_t)t->serial + 1; /* never reused in this process, unlike idents */
    if (tr_serial_tids != NULL && t->serial < tr_cap_serials) {
        tr_serial_tids[t->serial] = t->tid;
    }
    pthread_mutex_unlock(&tr_registry_lock);
    t->pos = t->cur->data;
    t->end = t->cur->data + TR_BLOCK_DATA;
    if (tr_key_ready) {
        pthread_setspecific(tr_exit_key, t);
    }
    tr_tls = t;
    return t;
}

int tr_thread_next_block(tr_thread_t *t)
{
    pthread_mutex_lock(&tr_registry_lock);
    tr_block_t *b = tr_block_get_locked();
    pthread_mutex_unlock(&tr_registry_lock);
    if (b == NULL) {
        return 0;
    }
    tr_block_t *old = t->cur;
    old->used = (uint32_t)(t->pos - old->data); /* final, before pos leaves the block */
    old->nrec = t->block_nrec;
    old->max_tick = t->w.tick > t->block_max_tick ? t->w.tick : t->block_max_tick;
    /* the block's own account is written before `pos` leaves it: a process killed between
     * the two leaves it for a harvest (tr_arena.c) */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->block_nrec = 0;
    t->block_max_tick = 0;
    memset(&t->w, 0, sizeof t->w); /* each block starts from a zero delta state */
    t->cur = b;
    t->end = b->data + TR_BLOCK_DATA;
    __atomic_store_n(&t->pos, b->data, __ATOMIC_RELEASE);
    __atomic_store_n(&old->next, b, __ATOMIC_RELEASE);
    return 1;
}

/* ---------------------------------------------------------------- drain */

static void tr_put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
} /* little-endian hosts */
static void tr_put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* One chunk to be: a run of whole records inside a block, and the thread they belong to.
 * The bytes are copied straight from the block into the chunk's bytes object (with the GIL),
 * so the blocks the drain has finished with are recycled only after that copy. */
typedef struct {
    uint64_t tid;
    uint64_t n;
    tr_delta_t base;
    const uint8_t *src;
    size_t len;
    tr_clock_t clock; /* how its ticks map to ns (tr_thread_clock) */
} tr_piece_t;

typedef struct {
    tr_piece_t *items;
    size_t len, cap;
    tr_block_t **release; /* blocks read to their end, for the commit to recycle */
    size_t nrelease, caprelease;
} tr_pieces_t;

static int tr_grow(void **items, size_t *cap, size_t len, size_t size)
{
    if (len < *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap * 2 : 64;
    void *grown = tr_raw_realloc(*items, ncap * size);
    if (grown == NULL) {
        return -1;
    }
    *items = grown;
    *cap = ncap;
    return 0;
}

static int tr_add_piece(tr_pieces_t *pieces, uint64_t tid, uint64_t n, tr_delta_t base,
                        const uint8_t *src, size_t len, const tr_clock_t *clock)
{
    if (tr_grow((void **)&pieces->items, &pieces->cap, pieces->len, sizeof(tr_piece_t)) < 0) {
        return -1;
    }
    pieces->items[pieces->len++] = (tr_piece_t){tid, n, base, src, len, *clock};
    return 0;
}

/* Below this interval (ns) two readings (each good to a few tens of ns) give no usable rate. */
#define TR_ANCHOR_MIN_NS 20000
/* A reading further ahead than this of the thread's mapping means the clock jumped (a
 * suspended or migrated VM): the mapping starts afresh. */
#define TR_ANCHOR_MAX_ERROR_NS 1000000

/* The mapping of a thread's next chunk: from where its last chunk's mapping left its latest
 * record, to the drain's fresh reading `now`. A thread's times then never step back from one
 * chunk to the next (each drain mapped by its own reading alone stepped back at the seams by
 * a reading's error, enough for an alloc and the free before it to swap places), and every
 * seam is pulled back to the clock. */
static tr_clock_t tr_thread_clock(const tr_thread_t *t, const tr_clock_t *now)
{
    if (!t->dclock_set || !tr_use_tsc || now->tick <= t->dlast_tick) {
        return *now;
    }
    tr_clock_t c = {t->dlast_tick, tr_tick_to_ns(&t->dclock, t->dlast_tick), now->mult};
    int64_t error = now->ns - tr_tick_to_ns(&c, now->tick);
    if (error > TR_ANCHOR_MAX_ERROR_NS) {
        return *now; /* the clock jumped ahead: starting afresh steps forward only */
    }
    int64_t dn = now->ns - c.ns;
    if (dn >= TR_ANCHOR_MIN_NS) {
        /* the rate that meets the reading, within 1% of the calibrated one: an error larger
         * than 1% of the interval (the clocks parted, or fell behind by a jump) is made
         * good over the next drains rather than by a step */
        uint64_t lo = now->mult - now->mult / 100, hi = now->mult + now->mult / 100;
        uint64_t mult = (uint64_t)(((unsigned __int128)(uint64_t)dn << 32) / (now->tick - c.tick));
        c.mult = mult < lo ? lo : mult > hi ? hi : mult;
    }
    return c;
}

/* A block the drain has read to its end waits for the commit (tr_buffers_commit): until the
 * batch holding its records is in the spool, a crash harvest may still need it. The drain
 * collects them here and hands them over under one lock at its end (tr_drain_chunks). */
static int tr_defer_release(tr_pieces_t *pieces, tr_block_t *b)
{
    if (tr_grow((void **)&pieces->release, &pieces->caprelease, pieces->nrelease,
                sizeof(tr_block_t *)) < 0) {
        return -1;
    }
    pieces->release[pieces->nrelease++] = b;
    return 0;
}

/* Bytes of whole records in t's block b, whose `next` was read as `next`: a block the writer
 * has left says it itself; in the block being written, the writer's `pos` (release-stored
 * after each record) does, unless the writer has left it since `next` was read -- then its
 * final `used` was written before `pos` moved on. */
static uint32_t tr_block_used(tr_thread_t *t, tr_block_t *b, tr_block_t *next)
{
    if (next == NULL) {
        uint8_t *pos = __atomic_load_n(&t->pos, __ATOMIC_ACQUIRE);
        if (pos >= b->data && pos <= b->data + TR_BLOCK_DATA) {
            return (uint32_t)(pos - b->data);
        }
    }
    return __atomic_load_n(&b->used, __ATOMIC_ACQUIRE);
}

/* Moves up to `budget` records of t into pieces (one per block). Returns the number of
 * records moved; stops early (keeping the rest for later) when memory runs out. */
static uint64_t tr_drain_thread(tr_thread_t *t, uint64_t budget, tr_pieces_t *pieces,
                                const tr_clock_t *now)
{
    uint64_t moved = 0;
    tr_clock_t clock = tr_thread_clock(t, now);
    while (moved < budget) {
        tr_block_t *b = t->dblock;
        tr_block_t *next = __atomic_load_n(&b->next, __ATOMIC_ACQUIRE);
        uint32_t used = tr_block_used(t, b, next);
        if (t->dpos < used) {
            const uint8_t *src = b->data + t->dpos;
            tr_scan_t scan;
            size_t took;
            uint64_t max_tick;
            if (next != NULL && b->nrec - t->dcount <= budget - moved) {
                /* sealed: the rest of the block is whole records; no need to look inside */
                took = used - t->dpos;
                scan.n = b->nrec - t->dcount;
                max_tick = b->max_tick;
                memset(&scan.end, 0, sizeof scan.end); /* the next block starts from zero */
            } else {
                took = tr_rec1_scan(src, used - t->dpos, t->d, budget - moved, &scan);
                max_tick = scan.max_tick;
            }
            if (scan.n > 0) {
                if (tr_add_piece(pieces, t->tid, scan.n, t->d, src, took, &clock) < 0) {
                    break;
                }
                if (!t->dclock_set || max_tick > t->dlast_tick) {
                    t->dlast_tick = max_tick;
                }
                t->dclock = clock;
                t->dclock_set = 1;
            }
            t->dpos += (uint32_t)took;
            t->dcount += (uint32_t)scan.n;
            t->d = scan.end;
            moved += scan.n;
        }
        if (next == NULL || t->dpos < used || tr_defer_release(pieces, b) < 0) {
            break;
        }
        t->dblock = next;
        t->dpos = 0;
        t->dcount = 0;
        memset(&t->d, 0, sizeof t->d);
    }
    return moved;
}

static int tr_fully_drained(tr_thread_t *t)
{
    tr_block_t *b = t->dblock;
    tr_block_t *next = __atomic_load_n(&b->next, __ATOMIC_ACQUIRE);
    return next == NULL && t->dpos == tr_block_used(t, b, next);
}

/* An exited thread whose data has all been drained: its state (and last block) are freed at
 * the next commit. */
static void tr_reap_later(tr_thread_t *t)
{
    pthread_mutex_lock(&tr_registry_lock);
    if (tr_grow((void **)&tr_pending_reaps, &tr_cap_pending_reaps, tr_n_pending_reaps,
                sizeof(tr_thread_t *)) == 0) {
        tr_pending_reaps[tr_n_pending_reaps++] = t;
        t->reaping = 1;
    }
    pthread_mutex_unlock(&tr_registry_lock);
}

/* The locked part of freeing a reaped state. */
static void tr_reap_locked(tr_thread_t *t)
{
    tr_thread_t **link = &tr_threads;
    while (*link != NULL && *link != t) {
        link = &(*link)->next_all;
    }
    if (*link == t) {
        *link = t->next_all;
    }
    tr_dead_events += t->events;
    tr_dead_drops += t->drops;
    tr_block_put_locked(t->dblock);
    tr_arena_put(t);
}

void tr_buffers_commit(uint64_t next_seq)
{
    pthread_mutex_lock(&tr_registry_lock);
    uint32_t next = tr_arena_commit_index() ^ 1u;
    for (tr_thread_t *t = tr_threads; t != NULL; t = t->next_all) {
        t->committed[next] = (tr_cursor_t){t->dblock, t->dpos, t->d};
    }
    tr_arena_publish_commit(next, next_seq);
    for (size_t i = 0; i < tr_n_pending_blocks; i++) {
        tr_block_put_locked(tr_pending_blocks[i]);
    }
    tr_n_pending_blocks = 0;
    for (size_t i = 0; i < tr_n_pending_reaps; i++) {
        tr_reap_locked(tr_pending_reaps[i]);
    }
    tr_n_pending_reaps = 0;
    pthread_mutex_unlock(&tr_registry_lock);
}

/* Copies pending records of every thread into pieces (without the GIL). */
static uint64_t tr_gather(uint64_t max_events, tr_pieces_t *pieces, const tr_clock_t *now)
{
    /* Snapshot the registry: states are only freed by the drain itself (or in a forked
     * child), so the pointers stay valid after the lock is released. */
    pthread_mutex_lock(&tr_registry_lock);
    size_t count = 0;
    for (tr_thread_t *t = tr_threads; t != NULL; t = t->next_all) {
        count++;
    }
    tr_thread_t **all = tr_raw_alloc((count + 1) * sizeof(tr_thread_t *));
    size_t i = 0;
    for (tr_thread_t *t = tr_threads; all != NULL && t != NULL; t = t->next_all) {
        all[i++] = t;
    }
    pthread_mutex_unlock(&tr_registry_lock);
    if (all == NULL) {
        return 0; /* no memory now: everything waits for the next drain */
    }
    uint64_t total = 0;
    for (i = 0; i < count; i++) {
        tr_thread_t *t = all[i];
        if (t->reaping) {
            continue;
        }
        int dead = __atomic_load_n(&t->dead, __ATOMIC_ACQUIRE);
        if (total < max_events) {
            total += tr_drain_thread(t, max_events - total, pieces, now);
        }
        if (dead && tr_fully_drained(t)) {
            tr_reap_later(t);
        }
    }
    tr_raw_free(all);
    return total;
}

/* Around a stretch of the drain without the GIL: the garbage collector the drain paused runs
 * meanwhile (other threads may collect, and fork, while the GIL is released). If another
 * thread disabled it meanwhile, that stands: the drain does not re-enable it at its end. */
static void tr_gc_before_release(void)
{
    if (tr_gc_paused) {
        PyGC_Enable();
    }
}

static void tr_gc_after_acquire(void)
{
    if (tr_gc_paused && !PyGC_Disable()) {
        tr_gc_paused = 0;
    }
}

PyObject *tr_drain_chunks(uint64_t max_events, uint64_t *events_out, uint64_t *bytes_out)
{
    tr_clock_t now;
    tr_clock_now(&now);
    tr_arena_note_clock(&now);
    tr_pieces_t pieces = {0};
    uint64_t total;
    /* Finding the records runs without the GIL so the traced program keeps running
     * meanwhile; the caller's tr_draining flag keeps other drains out. */
    tr_gc_before_release();
    Py_BEGIN_ALLOW_THREADS
    total = tr_gather(max_events, &pieces, &now);
    Py_END_ALLOW_THREADS
    tr_gc_after_acquire();
    /* All chunks go into one bytes object, made with the GIL; the copies into it (and the
     * page faults of its fresh memory) run without it. Each chunk's "data" is a memoryview
     * of its slice and "at" says where the slice starts: the publisher sends the chunks of a
     * batch as one slice of this object, with no copy of its own (a copy there would hold
     * the GIL, which the traced program waits for). */
    size_t size = 0;
    for (size_t i = 0; i < pieces.len; i++) {
        size += TR_REC1_HEADER + pieces.items[i].len;
    }
    PyObject *chunks = PyList_New(0);
    PyObject *joined = NULL, *view = NULL;
    if (chunks != NULL && pieces.len > 0) {
        joined = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        view = joined != NULL ? PyMemoryView_FromObject(joined) : NULL;
        if (view == NULL) {
            Py_CLEAR(chunks);
        }
    }
    if (chunks != NULL && pieces.len > 0) {
        uint8_t *out = (uint8_t *)PyBytes_AS_STRING(joined);
        tr_gc_before_release();
        Py_BEGIN_ALLOW_THREADS
        for (size_t i = 0; i < pieces.len; i++) {
            tr_piece_t *p = &pieces.items[i];
            tr_write_header(out, p->n, p->base, &p->clock);
            memcpy(out + TR_REC1_HEADER, p->src, p->len);
            out += TR_REC1_HEADER + p->len;
        }
        Py_END_ALLOW_THREADS
        tr_gc_after_acquire();
    }
    size_t at = 0;
    for (size_t i = 0; i < pieces.len && chunks != NULL; i++) {
        tr_piece_t *p = &pieces.items[i];
        size_t end = at + TR_REC1_HEADER + p->len;
        PyObject *slice = PySequence_GetSlice(view, (Py_ssize_t)at, (Py_ssize_t)end);
        PyObject *chunk =
            slice == NULL ? NULL
                          : Py_BuildValue("{s:K,s:K,s:s,s:N,s:n}", "tid",
                                          (unsigned long long)p->tid, "n", (unsigned long long)p->n,
                                          "enc", "rec1", "data", slice, "at", (Py_ssize_t)at);
        if (chunk == NULL || PyList_Append(chunks, chunk) < 0) {
            Py_CLEAR(chunks);
        }
        Py_XDECREF(chunk);
        at = end;
    }
    Py_XDECREF(view);
    Py_XDECREF(joined);
    *bytes_out += size;
    if (chunks == NULL) {
        /* out of memory: the gathered records are lost, and counted as dropped */
        pthread_mutex_lock(&tr_registry_lock);
        tr_dead_drops += total;
        pthread_mutex_unlock(&tr_registry_lock);
    }
    pthread_mutex_lock(&tr_registry_lock);
    for (size_t i = 0; i < pieces.nrelease; i++) {
        if (tr_grow((void **)&tr_pending_blocks, &tr_cap_pending_blocks, tr_n_pending_blocks,
                    sizeof(tr_block_t *)) < 0) {
            tr_block_put_locked(pieces.release[i]); /* no memory: recycled now (copied) */
            continue;
        }
        tr_pending_blocks[tr_n_pending_blocks++] = pieces.release[i];
    }
    pthread_mutex_unlock(&tr_registry_lock);
    tr_raw_free(pieces.items);
    tr_raw_free(pieces.release);
    *events_out = total;
    return chunks;
}

uint64_t tr_tid_of_ident(uint64_t ident)
{
    uint64_t tid = 0;
    pthread_mutex_lock(&tr_registry_lock);
    for (tr_thread_t *t = tr_threads; t != NULL; t = t->next_all) {
        if (t->ident == ident && !__atomic_load_n(&t->dead, __ATOMIC_ACQUIRE)) {
            tid = t->tid;
            break;
        }
    }
    pthread_mutex_unlock(&tr_registry_lock);
    return tid;
}

uint64_t tr_serial_tid(uint32_t serial)
{
    pthread_mutex_lock(&tr_registry_lock);
    uint64_t tid = serial < tr_n_serials ? tr_serial_tids[serial] : 0;
    pthread_mutex_unlock(&tr_registry_lock);
    return tid;
}

void tr_buffers_reset_high_water(void)
{
    pthread_mutex_lock(&tr_registry_lock);
    tr_high_water_blocks = tr_blocks_in_use;
    pthread_mutex_unlock(&tr_registry_lock);
}

void tr_buffer_stats(uint64_t *events, uint64_t *drops, uint64_t *pending, uint64_t *high_water)
{
    pthread_mutex_lock(&tr_registry_lock);
    uint64_t ev = tr_dead_events, dr = tr_dead_drops + tr_attach_failures;
    for (tr_thread_t *t = tr_threads; t != NULL; t = t->next_all) {
        ev += __atomic_load_n(&t->events, __ATOMIC_RELAXED);
        dr += __atomic_load_n(&t->drops, __ATOMIC_RELAXED);
    }
    *events = ev;
    *drops = dr;
    *pending = tr_blocks_in_use * TR_BLOCK_SIZE;
    *high_water = tr_high_water_blocks * TR_BLOCK_SIZE;
    pthread_mutex_unlock(&tr_registry_lock);
}

uint64_t tr_buffer_pending(void)
{
    pthread_mutex_lock(&tr_registry_lock);
    uint64_t pending = tr_blocks_in_use * TR_BLOCK_SIZE;
    pthread_mutex_unlock(&tr_registry_lock);
    return pending;
}

/* ---------------------------------------------------------------- fork */

void tr_buffers_atfork_prepare(void)
{
    pthread_mutex_lock(&tr_registry_lock);
    tr_thread_t *self = tr_tls;
    tr_arena_before_fork(self == &tr_dead_thread ? NULL : self);
}

void tr_buffers_atfork_parent(void)
{
    pthread_mutex_unlock(&tr_registry_lock);
}

/* In the child only the forking thread exists: other threads' states are forgotten (one of
 * them may have been mid-record; nothing of it is read), and the survivor's buffer is emptied
 * (its pending records belong to the parent, which ships them itself). The child gets an
 * arena of its own holding just the survivor's state and block (tr_arena.c). */
void tr_buffers_after_fork_child(void)
{
    pthread_mutex_init(&tr_registry_lock, NULL);
    tr_thread_t *self = tr_tls;
    if (self == &tr_dead_thread) {
        self = NULL;
    }
    tr_threads = NULL;
    tr_blocks_in_use = 0;
    tr_n_pending_blocks = 0;
    tr_n_pending_reaps = 0;
    tr_arena_after_fork_child(self); /* (restores the survivor's state as of the fork) */
    if (self != NULL) {
        tr_block_t *cur = self->cur;
        cur->next = NULL;
        cur->used = 0;
        cur->nrec = 0;
        self->dblock = cur;
        self->dpos = 0;
        self->dcount = 0;
        self->block_nrec = 0;
        self->pos = cur->data;
        memset(&self->w, 0, sizeof self->w);
        memset(&self->d, 0, sizeof self->d);
        self->block_max_tick = 0;
        self->dclock_set = 0; /* a drain may have been writing it when another thread forked */
        self->reaping = 0;
        memset(self->committed, 0, sizeof self->committed);
        self->committed[0].block = self->committed[1].block = cur;
        self->events = 0;
        self->drops = 0;
        self->next_all = NULL;
        tr_threads = self;
        tr_blocks_in_use = 1;
    }
    tr_high_water_blocks = tr_blocks_in_use;
    tr_dead_events = 0;
    tr_dead_drops = 0;
    tr_attach_failures = 0;
}
