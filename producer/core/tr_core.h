/* memscope tracer: declarations shared by the C files of the native core.
 *
 * Files (producer/core; docs/architecture.md has the table): binding.c (the Python module,
 * bindings only), tr_capture.c (start, stop, fork handlers), tr_drain.c (the drain),
 * tr_rows.c (rare rows), tr_clock.c, tr_buffer.c (per-thread record buffers, commits),
 * tr_arena.c (the mapping every block lives in; the crash harvest), tr_stack.c (interned
 * Python stacks), tr_hooks.c (allocator hooks; full mode via tr_record.h), tr_modes.c
 * (sampled and aggregated modes), tr_map.c (their live map), tr_numpy.c (numpy's
 * data-memory handler), tr_native_mode.c (native mode), tr_own.c, tr_term.c. The record
 * layout, kinds and domains are protocol/rec1.h; reading rec1 is protocol/rec1.c.
 *
 * Concurrency model, in one place:
 *   - A hook runs in any thread. MEM and OBJ hooks hold the GIL (CPython's contract); RAW and
 *     numpy hooks may not. A hook only touches its own thread's tr_thread_t, writes records
 *     into that thread's current block and publishes them with a release store of `pos`.
 *   - The drain (Python-callable, holds the GIL) reads every thread's blocks up to `used`
 *     and recycles blocks the writer has moved past (`next` != NULL).
 *   - The stack tree is only touched with the GIL held (hooks walk frames only then).
 *   - Block pool and thread registry: tr_registry_lock (a pthread mutex, taken rarely).
 *   - memscope's own blocks (tr_own.c): tr_own_lock, taken only by threads whose events are
 *     memscope's (t->ignored set), never by the program's.
 */
#ifndef MEMSCOPE_TR_CORE_H
#define MEMSCOPE_TR_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rec1.h" /* record kinds, domains, the rec1 layout (protocol/rec1.h) */

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define TR_HAVE_TSC 1
#else
#define TR_HAVE_TSC 0
#endif

/* Capture modes. */
/* TR_MODE_HOOKS_ONLY records nothing: an allocation reads the clock and walks the stack as
 * every mode does, and drops both (the floor bench/bench_tracer.py measures the modes by). */
enum { TR_MODE_FULL = 0, TR_MODE_AGGREGATED = 1, TR_MODE_SAMPLED = 2, TR_MODE_HOOKS_ONLY = 3 };

#define TR_BLOCK_SIZE (64 * 1024)
#define TR_MAX_DEPTH 128

typedef struct tr_block {
    struct tr_block *next; /* set once by the writer (release) when it moves to a new block */
    uint32_t used;         /* bytes of data[] holding records, set when the writer leaves the
                            * block (before `next`); until then the writer's `pos` says */
    uint32_t nrec;         /* records in the block; written before `next` is published */
    uint64_t max_tick;     /* the largest tick of its records; written before `next` is
                            * published */
    uint8_t data[];
} tr_block_t;

#define TR_BLOCK_DATA (TR_BLOCK_SIZE - (uint32_t)sizeof(tr_block_t))

/* Where a thread's records are safely out of the process: everything before it is in a batch
 * the publisher has written to its spool (tr_buffers_commit). Kept twice: the arena header's
 * commit index, stored last, names the copies (and the seq) of the last whole commit, so a
 * process killed in the middle of a commit leaves the one before it whole. */
typedef struct {
    tr_block_t *block;
    uint32_t pos;
    tr_delta_t d;
} tr_cursor_t;

typedef struct tr_thread {
    /* --- owned by the thread itself (the writer); others read only as noted --- */
    uint8_t busy;        /* reentrancy guard: set while this thread is inside a hook or a drain */
    uint8_t ignored;     /* TR_IGNORED (ignore_current_thread) | TR_PAUSED | TR_DRAINING: the
                      * thread's events are memscope's own (tr_own.c) */
    tr_block_t *cur;     /* block being written */
    uint8_t *pos;        /* next free byte in cur->data (release store after each record) */
    uint8_t *end;        /* cur->data + TR_BLOCK_DATA */
    tr_delta_t w;        /* writer's delta state */
    uint64_t events;     /* records written (drain reads it relaxed, for stats) */
    uint32_t block_nrec; /* records in the current block */
    /* largest tick in the current block before a record that went back in time (set where
     * one is written: aggregated mode sends a pinned block's allocation with its old tick);
     * otherwise w.tick is the largest */
    uint64_t block_max_tick;
    uint64_t drops;             /* records lost because no block was available (read relaxed) */
    int64_t sample_left;        /* sampled mode: bytes until the next sample */
    uint64_t rng;               /* sampled mode: xorshift state */
    uint64_t stamp_tick;        /* the last clock reading (see tr_stamp in tr_record.h) */
    unsigned long stamp_switch; /* ... taken at this count of hand-overs */
    uint32_t stamp_reuse;       /* ... and reusable this many more times */
    /* per-thread stack cache, outermost frame first (GIL held when used) */
    int cache_depth;
    const void *cache_code[TR_MAX_DEPTH];
    const void *cache_instr[TR_MAX_DEPTH];
    uint32_t cache_id[TR_MAX_DEPTH];
    const void *walk_code[TR_MAX_DEPTH];
    const void *walk_instr[TR_MAX_DEPTH];
    /* (parent node, instruction) -> node: a small cache in front of the shared index */
    struct {
        const void *instr;
        uint32_t parent, id;
    } leaf[256];
    /* --- owned by the drain (serialized by the GIL and tr_draining) --- */
    tr_block_t *dblock; /* oldest block not yet fully drained */
    uint32_t dpos;      /* drained bytes of dblock */
    uint32_t dcount;    /* drained records of dblock */
    tr_delta_t d;       /* delta state at the drain position */
    /* the clock mapping of the thread's last chunk and the largest tick drained so far: the
     * next chunk's mapping starts where that one left it (tr_buffer.c, tr_thread_clock) */
    tr_clock_t dclock;
    uint64_t dlast_tick;
    uint8_t dclock_set;
    uint8_t reaping; /* dead and fully drained: freed at the next commit */
    /* --- written by the commit (GIL, no drain running); read after a crash (tr_arena.c) --- */
    tr_cursor_t committed[2];
    /* --- shared --- */
    uint64_t tid;    /* the thread's id in the log: serial + 1, never reused; immutable */
    uint64_t ident;  /* PyThread_get_thread_ident() of the owner (reused by CPython once
                        * the thread is gone); immutable */
    uint32_t serial; /* this state's number (tr_serial_tid maps it back to tid); immutable */
    int dead;        /* set (release) by the owner's thread-exit destructor */
    struct tr_thread *next_all; /* registry list; protected by tr_registry_lock */
    /* native mode hook (tr_native_mode.c): while nm_preset is set, the thread's hooks use
     * nm_stack as the stack of the event being recorded (owned by the thread) */
    uint8_t nm_preset;
    uint32_t nm_stack;
    /* native mode: the thread's last GIL-free walk (hash of its frames -> stack id) and last
     * native frame (parent, return address -> node id); owned by the thread */
    uint64_t nm_walk_hash;
    uint32_t nm_walk_id;
    uint32_t nm_ret_parent;
    uint64_t nm_ret;
    uint32_t nm_ret_id;
} tr_thread_t;

/* Bits of tr_thread_t.ignored. */
enum { TR_IGNORED = 1, TR_PAUSED = 2, TR_DRAINING = 4 };

/* ---- memscope's own blocks (tr_own.c) ---- */
void tr_own_add(void *p);
int tr_own_remove(void *p); /* 1 if p was one (it is then forgotten) */
size_t tr_own_count(void);
void tr_own_atfork_prepare(void);
void tr_own_atfork_parent(void);
void tr_own_atfork_child(void);

/* ---- the arena (tr_arena.c): every block and thread state is a slot of one mapping ----
 * With a directory, the mapping is a file there that outlives the process, so a supervisor
 * can harvest what a killed process had not shipped; without one it is anonymous memory. */
#define TR_SLOT_SIZE TR_BLOCK_SIZE
enum { TR_SLOT_FREE = 0, TR_SLOT_BLOCK = 1, TR_SLOT_THREAD = 2 };
int tr_arena_ready(void);
/* Creates the (anonymous) arena once; -1 when it cannot. tr_registry_lock held. */
int tr_arena_init(void);
/* Moves the arena into a new file of `dir` (once; before any hook can run, no drain
 * running); -1 when it cannot (it then stays anonymous). tr_registry_lock held. */
int tr_arena_use_dir(const char *dir);
void tr_arena_before_fork(const tr_thread_t *self); /* the forking thread's state, saved */
void *tr_arena_get(int kind);  /* a zeroed-or-recycled slot; NULL when none; registry lock */
void tr_arena_put(void *slot); /* registry lock held */
void tr_arena_note_clock(const tr_clock_t *clock); /* the latest reference reading */
uint32_t tr_arena_commit_index(void);              /* which cursor copies are live */
/* Makes copy `index` of every cursor live, with the seq of the next batch to spool. */
void tr_arena_publish_commit(uint32_t index, uint64_t next_seq);
uint64_t tr_arena_next_seq(void);
/* In a forked child: a fresh arena of its own holding only `keep_thread` (may be NULL) and
 * its block; their addresses stay the same. */
void tr_arena_after_fork_child(tr_thread_t *keep_thread);
PyObject *tr_py_arena_identify(PyObject *self, PyObject *args);
PyObject *tr_py_arena_path(PyObject *self, PyObject *noargs);
PyObject *tr_py_arena_close(PyObject *self, PyObject *args);
PyObject *tr_py_harvest(PyObject *self, PyObject *args);

/* ---- the capture (tr_capture.c) ---- */
typedef struct {
    int mode;
    long long sample_bytes;
    unsigned long long max_buffer;
    int numpy;
    int reuse_stamps;
    const char *arena_dir; /* NULL: anonymous memory */
} tr_start_t;
/* 0, or -1 with the Python error set. GIL held (as for everything below). */
int tr_capture_start(const tr_start_t *options);
void tr_capture_stop(void);
int tr_capture_active(void);
int tr_capture_numpy_traced(void);
int tr_capture_numpy_install(void); /* numpy_traced(), or -1 with the Python error set */
void tr_capture_after_fork_child(void);

/* ---- the drain (tr_drain.c) ---- */
extern int tr_draining; /* a drain is in progress */
/* Appends the chunks and rare rows drained to `chunks` and `rare` (nothing while another
 * drain runs); with `commit`, commits at the arena's next seq. 0, or -1 with the error set. */
int tr_drain(PyObject *chunks, PyObject *rare, uint64_t max_events, int commit);
int tr_drain_commit(uint64_t next_seq); /* 0 (nothing done) while a drain runs, else 1 */
void tr_drain_shipped(uint64_t *events, uint64_t *bytes);
void tr_drain_after_fork_child(void);

/* ---- SIGTERM (tr_term.c) ---- */
int tr_term_install(int fd);
int tr_term_pending(void);
void tr_term_uninstall(void);
void tr_term_raise(void);
void tr_term_release(void);

/* ---- globals (defined in tr_buffer.c / tr_hooks.c) ---- */
/* Set with the GIL held by start/stop; read relaxed by hooks. */
extern int tr_enabled;
extern int tr_mode;
/* Written by start (GIL held) before tr_enabled is set; read-only afterwards. */
extern int64_t tr_sample_bytes;
extern uint64_t tr_max_buffer_bytes;
/* Set by the drain (GIL held) while it keeps the garbage collector off. */
extern int tr_gc_paused;

/* ---- clock ---- */
extern int tr_use_tsc; /* decided at the first start(); read-only afterwards */

static inline uint64_t tr_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tr_tick(void)
{
#if TR_HAVE_TSC
    if (tr_use_tsc) {
        return __rdtsc();
    }
#endif
    return tr_monotonic_ns();
}

void tr_clock_init(void);
void tr_clock_now(tr_clock_t *out); /* a fresh reference point with the best rate so far */

static inline int64_t tr_tick_to_ns(const tr_clock_t *c, uint64_t tick)
{
    __int128 rel = (__int128)(int64_t)(tick - c->tick) * (__int128)c->mult;
    return (int64_t)((uint64_t)c->ns + (uint64_t)(rel >> 32));
}

/* ---- buffers (tr_buffer.c) ---- */
extern __thread tr_thread_t *tr_tls __attribute__((tls_model("initial-exec")));
tr_thread_t *tr_thread_attach(void); /* creates the calling thread's state; NULL if impossible */
uint64_t tr_serial_tid(uint32_t serial);  /* the tid of a thread state's serial number */
uint64_t tr_tid_of_ident(uint64_t ident); /* the live thread's tid (0: none attached) */
int tr_thread_next_block(tr_thread_t *t); /* 0 when no block could be had (a drop) */
void tr_buffers_after_fork_child(void);
void tr_buffers_atfork_prepare(void);
void tr_buffers_atfork_parent(void);
int tr_buffers_init(void);
void tr_buffers_reset_high_water(void); /* at start: high water counts from now */
/* Drain: returns a new list of chunk dicts, or NULL with an exception set. */
PyObject *tr_drain_chunks(uint64_t max_events, uint64_t *events_out, uint64_t *bytes_out);
/* The arena, made if needed, and moved to `dir` if given (start(): GIL held, no drain
 * running); -1 (no exception) when it could not be made; 1 when `dir` could not be used. */
int tr_buffers_arena(const char *dir);
/* Marks everything drained so far as safely shipped (every batch before `next_seq` is
 * spooled): recycles the drained blocks. */
void tr_buffers_commit(uint64_t next_seq);
void tr_buffer_stats(uint64_t *events, uint64_t *drops, uint64_t *pending, uint64_t *high_water);
/* Bytes of the record buffers threads hold now (whole buffers; no walk over the threads). */
uint64_t tr_buffer_pending(void);

static inline tr_thread_t *tr_current(void)
{
    tr_thread_t *t = tr_tls;
    if (t == NULL) {
        t = tr_thread_attach();
    }
    return t;
}

/* Append one record to the calling thread's stream. `with_stack` false: the record has no
 * stack (a free then decodes with stack id 0); a free with one always carries its S delta.
 * Counts a drop when no block is available. */
static inline void tr_emit(tr_thread_t *t, unsigned kind, unsigned domain, uint64_t addr,
                           uint64_t old_addr, uint64_t size, uint32_t stack, int with_stack,
                           uint64_t tick)
{
    if ((size_t)(t->end - t->pos) < TR_MAX_RECORD && !tr_thread_next_block(t)) {
        t->drops++;
        return;
    }
    uint8_t *head = t->pos;
    uint8_t *p = head + 1;
    unsigned hdr = kind | (domain << 2);
    if (tick == t->w.tick) { /* allocations often reuse a reading (tr_stamp, tr_record.h) */
        hdr |= TR_HDR_SAME_TICK;
    } else {
        p = tr_put_varint(p, tr_zz64(tick - t->w.tick));
        t->w.tick = tick;
    }
    p = tr_put_varint(p, tr_zz64(addr - t->w.addr));
    t->w.addr = addr;
    if (kind != TR_FREE) {
        p = tr_put_varint(p, size);
    }
    if (kind == TR_REALLOC) {
        p = tr_put_varint(p, tr_zz64(old_addr - addr));
    }
    if (with_stack && (stack != t->w.stack || kind == TR_FREE)) { /* a free's S: its stack */
        hdr |= TR_HDR_STACK;
        p = tr_put_varint(p, tr_zz32(stack - t->w.stack));
        t->w.stack = stack;
    }
    *head = (uint8_t)hdr;
    t->events++;
    t->block_nrec++;
    __atomic_store_n(&t->pos, p, __ATOMIC_RELEASE); /* publishes the record (tr_buffer.c) */
}

/* ---- stacks (tr_stack.c) ---- */
int tr_stack_gil_held(void);
uint32_t tr_stack_current(tr_thread_t *t);                /* GIL must be held */
uint32_t tr_stack_current_skip(tr_thread_t *t, int skip); /* minus `skip` innermost frames */
int tr_stack_emit(PyObject *rare);                        /* adds frames/stacks rows; GIL held */
void tr_stack_reset_emitted(void);
uint32_t tr_stack_count(void);
/* Stamps may be reused only where the GIL's hand-overs can be counted (3.11). */
#define TR_CAN_REUSE_STAMPS (PY_VERSION_HEX < 0x030C0000)
extern unsigned long tr_drain_epoch; /* GIL: bumped by every drain and start */
extern int tr_reuse_stamps;          /* start(): may allocations reuse a clock reading */

/* ---- hooks (tr_hooks.c) ---- */
int tr_hooks_install(void);
int tr_hooks_layout_ok(void); /* 0: this compiler lays out tr_live_t's bit-fields otherwise */
void tr_hooks_uninstall(void);
int tr_hooks_emit_aggregates(PyObject *rare, int64_t now_ns, uint64_t *current,
                             uint64_t *peak); /* aggregated mode */
int64_t tr_hooks_promote(PyObject *chunks, const tr_clock_t *clock, int everything);
void tr_hooks_after_fork_child(void);
void tr_hooks_atfork_prepare(void);
void tr_hooks_atfork_parent(void);
void tr_hooks_reset_maps(void);
/* Make sure the free of the block at addr is recorded (track_var); GIL held, guard taken. */
int tr_hooks_pin(uint64_t addr, uint64_t size, tr_thread_t *t);
void tr_hooks_map_stats(uint64_t *live, uint64_t *slots); /* aggregated/sampled maps */
/* Record one event from a hook in any domain (numpy's handler uses it too). */
void tr_record_alloc(tr_thread_t *t, unsigned kind, unsigned domain, void *ptr, size_t size);
/* `gil`: whether the thread holds the GIL (its caller asked already, for the stamp). */
void tr_record_realloc(tr_thread_t *t, unsigned domain, int gil, void *ptr, void *old, size_t size,
                       uint64_t tick);
void tr_record_free(tr_thread_t *t, unsigned domain, void *ptr);

/* The slow path of a hook whose tr_enter() said no: the calling thread's state with its
 * guard taken when its events are memscope's own (see tr_own.c), else NULL. */
static inline tr_thread_t *tr_enter_own(void)
{
    tr_thread_t *t = tr_tls;
    if (t == NULL || t->busy || !t->ignored || !__atomic_load_n(&tr_enabled, __ATOMIC_RELAXED)) {
        return NULL;
    }
    t->busy = 1;
    return t;
}

/* Entering a hook: the calling thread's state with its guard taken, or NULL when this call
 * must not be recorded (tracing off, thread ignored, already inside a hook). */
static inline tr_thread_t *tr_enter(void)
{
    if (!__atomic_load_n(&tr_enabled, __ATOMIC_RELAXED)) {
        return NULL;
    }
    tr_thread_t *t = tr_current();
    if (t == NULL || (t->busy | t->ignored)) {
        return NULL;
    }
    t->busy = 1;
    return t;
}

/* ---- numpy (tr_numpy.c) ---- */
int tr_numpy_install(void); /* 1 installed, 0 numpy absent/unusable, -1 error */
void tr_numpy_uninstall(void);

/* ---- shared helpers ---- */
void *tr_raw_alloc(size_t size); /* libc, never traced */
void *tr_raw_calloc(size_t n, size_t size);
void *tr_raw_realloc(void *p, size_t size);
void tr_raw_free(void *p);
/* A row of the drain's rare tables (tr_rows.c); steals the references in values. */
int tr_append_row(PyObject *rare, const char *table, const char *const *names, PyObject **values,
                  int n);

#endif
