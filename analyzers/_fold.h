/* memscope fold: the state of the C twin of analyzers/fold.py (the streaming fold).
 *
 * The specification is the docstring of analyzers/fold.py; PyFold there is the reference.
 * Files: _fold_core.c (hash tables, the per-event fold, set_sampling/watch on the state),
 * _fold.c (the Python type: parameters, argument checks, feed, export, restore).
 *
 * Concurrency model: a fold_t is not thread-safe: one Fold per thread, or the caller
 * serializes its calls. Fold.feed releases the GIL for its loop and marks the Fold busy
 * meanwhile; any call that finds it busy (another thread) raises RuntimeError instead of
 * racing. Nothing in the loop touches a Python object.
 *
 * Memory: every table grows by doubling and never shrinks; nothing is allocated per event
 * except when a table doubles. Room for the inserts of a batch of events is made before
 * the batch (fd_room; event by event when memory is short), so a failed allocation stops
 * the loop between two events and leaves a consistent state (the events before it folded).
 */
#ifndef MEMSCOPE_FOLD_H
#define MEMSCOPE_FOLD_H

#include <stddef.h>
#include <stdint.h>

/* Event kinds (mirror memscope.protocol.wire), blocks.state and findings.type codes. */
#include "rec1.h" /* record kinds: protocol/rec1.h */
enum { FD_ALLOC = TR_ALLOC, FD_CALLOC = TR_CALLOC, FD_REALLOC = TR_REALLOC, FD_FREE = TR_FREE };
enum { FD_LIVE = 1, FD_DEAD_REPEATABLE = 2, FD_DEAD = 3 };
enum { FD_DOMAIN_MISMATCH = 1, FD_REPEATED_END = 2, FD_INTERIOR_FREE = 3 };
#define FD_PROBE_ALIGN 16
#define FD_LIFETIME_BUCKETS 65 /* bit_length of a lifetime below 2**64: 0..64 */
#define FD_SMALL 1024          /* sizes counted in a per-process array, not hashed */
#define FD_CACHE 16            /* direct-mapped caches of processes and threads */

typedef struct {
    int64_t temporary_ns, oversized_bytes, timeline_buckets, site_slots, initial_width_ns,
        keep_findings, interior_probe_bytes, max_interior_checks;
} fd_params_t;

/* Open addressing from a (pid, 64-bit key) to an index into a dense array (linear probing,
 * power-of-two capacity, at most half full). Entries are never deleted. */
typedef struct {
    uint64_t key;
    uint32_t pid;
    uint32_t idx; /* index + 1; 0 = empty slot */
} fd_slot_t;

typedef struct {
    fd_slot_t *slots;
    uint64_t mask; /* capacity - 1 */
    uint64_t n;
    int shift; /* 64 - log2(capacity): a key's home slot is hash >> shift */
} fd_index_t;

/* One address's entry (blocks table; its key, (pid, address), is in the index slot): one
 * cache line. kind is an allocating kind (0..2), end_kind 0 or an ending one (2, 3). */
typedef struct {
    uint64_t tid, seq;
    int64_t ts_ns;
    uint64_t size;
    int64_t end_ts_ns;
    uint64_t end_tid;
    uint32_t stack_id, end_stack_id;
    uint32_t large; /* position + 1 in its process's `large`; 0 = not there */
    uint8_t domain, end_domain;
    uint8_t state : 2, kind : 2, end_kind : 2;
} fd_entry_t;

_Static_assert(sizeof(fd_entry_t) == 64, "a block entry is one cache line");

/* A live block larger than interior_probe_bytes. */
typedef struct {
    uint64_t address;
    uint32_t idx; /* its entry */
} fd_large_t;

/* The exported columns of `processes`, in their order (_fold.c maps them by offset). */
typedef struct {
    uint32_t pid;
    int64_t sample_bytes, origin_ts_ns, width_ns, first_ts_ns, last_ts_ns, first_alloc_ts_ns,
        last_alloc_ts_ns;
    int64_t events, allocations, bytes_allocated, frees, bytes_freed, live_blocks, live_bytes,
        reused, reused_bytes, unmatched_frees, repeated_ends, domain_mismatches, interior_frees,
        interior_checked, interior_unchecked, oversized, temporary_count, temporary_bytes,
        peak_bytes, peak_ts_ns;
    double w_allocations, w_bytes_allocated, w_frees, w_bytes_freed, w_live_blocks, w_live_bytes;
    int64_t w_live_rounded, w_peak_bytes, w_peak_ts_ns;
} fd_proc_row_t;

typedef struct {
    int64_t events, allocations, frees, bytes_allocated, bytes_freed, live_bytes, max_live_bytes;
} fd_bucket_t;

typedef struct {
    fd_proc_row_t r;
    int shift;             /* log2(width_ns) */
    uint64_t peak_version; /* bumped on each new peak (sites snapshot lazily) */
    int64_t kept[4];       /* findings kept by type; [0] = oversized rows */
    fd_bucket_t *buckets;  /* timeline_buckets fine buckets (events == 0: none) */
    int64_t *small;        /* sizes: counts of sizes below FD_SMALL (the rest: f->sizes) */
    int64_t life[FD_LIFETIME_BUCKETS][2]; /* lifetimes: count, bytes */
    fd_large_t *large;                    /* live blocks > interior_probe_bytes */
    uint32_t nlarge, large_cap;
} fd_proc_t;

/* A site (pid, stack, domain): two cache lines, the first all that an allocation touches.
 * Its `reused` count and its domain are apart (fold_t.site_reused, site_domain), its series
 * too (fd_sv). The site index's key is fd_site_key(stack, domain). */
typedef struct {
    uint32_t pid, stack_id;
    int64_t live_blocks, live_bytes, last_slot;
    uint64_t pv, av; /* the peak versions its snapshots belong to */
    int64_t allocations, bytes_allocated;
    int64_t frees, bytes_freed, temporary_count, temporary_bytes, peak_blocks, peak_bytes,
        all_peak_blocks, all_peak_bytes;
} fd_site_t;

_Static_assert(sizeof(fd_site_t) == 128, "a site is two cache lines");

typedef struct {
    uint32_t pid;
    uint64_t tid;
    int64_t allocations, bytes_allocated, frees, live_blocks, live_bytes;
} fd_thread_t;

typedef struct {
    uint32_t pid;
    uint64_t size;
    int64_t count;
} fd_size_t;

typedef struct {
    uint8_t type;
    uint32_t pid;
    uint64_t tid, seq;
    int64_t ts_ns;
    uint64_t address;
    uint8_t kind, domain;
    uint32_t stack_id;
    int64_t alloc_ts_ns;
    uint8_t alloc_domain;
    uint64_t alloc_tid;
    uint32_t alloc_stack_id;
    uint64_t size, block_address;
    int64_t prev_end_ts_ns;
    uint64_t prev_end_tid;
    uint32_t prev_end_stack_id;
    uint8_t prev_end_kind;
} fd_finding_t;

typedef struct {
    uint32_t pid;
    uint64_t tid;
    int64_t ts_ns;
    uint64_t address, size;
    uint8_t domain;
    uint32_t stack_id;
    int64_t free_ts_ns;
} fd_oversized_t;

/* deaths and watched rows */
typedef struct {
    uint32_t pid;
    uint64_t address;
    int64_t ts_ns;
} fd_mark_t;

/* A temporal cell: the blocks of a site allocated in temporal slot a and ended in e > a
 * (fold.py's `temporal`; its key in tm_ix is (site, fd_tm_key(a, e))). */
typedef struct {
    uint32_t site;
    int64_t a, e, bytes, count;
} fd_tcell_t;

#define FD_TEMPORAL_SLOTS 64 /* at most (fold.MAX_TEMPORAL_SLOTS) */

static inline uint64_t fd_tm_key(int64_t a, int64_t e)
{
    return ((uint64_t)a << 8) | (uint64_t)e;
}

/* A growable array of fixed-size items. */
typedef struct {
    char *data;
    size_t n, cap, item;
} fd_vec_t;

#define FD_CHUNK_BITS 16 /* block entries live in chunks of 65536 (never moved) */

typedef struct {
    fd_params_t p;
    int slot_shift; /* log2(timeline_buckets / site_slots) */

    fd_index_t proc_ix;
    fd_proc_t **procs;
    uint32_t nprocs, procs_cap;
    fd_vec_t sampling; /* fd_mark_t: pid, ts_ns = sample_bytes (for processes to come) */

    fd_index_t site_ix;
    fd_site_t *sites; /* 64-byte aligned */
    int64_t *site_reused;
    uint8_t *site_domain;
    int64_t *series; /* site_slots columns of sites_cap (fd_sv) */
    uint32_t nsites, sites_cap;

    fd_index_t thread_ix;
    fd_vec_t threads; /* fd_thread_t */
    fd_index_t size_ix;
    fd_vec_t sizes; /* fd_size_t */

    fd_index_t block_ix;
    fd_entry_t **chunks;
    uint32_t nblocks, nchunks, chunks_cap;

    fd_index_t watch_ix;
    fd_vec_t watched;   /* fd_mark_t */
    fd_vec_t findings;  /* fd_finding_t */
    fd_vec_t oversized; /* fd_oversized_t */
    fd_vec_t deaths;    /* fd_mark_t */
    fd_index_t tm_ix;   /* (site, fd_tm_key(a, e)) -> tcells */
    fd_vec_t tcells;    /* fd_tcell_t */
    int tm_shift;       /* log2(timeline_buckets / temporal slots) */

    int has_all;
    int all_shift;
    int64_t all_origin;
    fd_bucket_t *all_buckets;
    int64_t all_live, all_peak, all_peak_ts, all_w_live, all_w_peak, all_w_peak_ts;
    uint64_t all_version;

    /* caches of recent lookups (consecutive events often repeat them) */
    fd_proc_t *c_proc[FD_CACHE]; /* by pid % FD_CACHE */
    uint32_t c_thread[FD_CACHE]; /* by a hash of (pid, tid), index + 1 */
    uint32_t c_site, c_size;     /* the last ones, index + 1; 0 = none */
} fold_t;

/* The columns of one event (feed's arrays). */
typedef struct {
    const uint32_t *pid;
    const uint64_t *tid, *seq;
    const int64_t *ts;
    const uint8_t *kind, *domain;
    const uint64_t *address, *old_address, *size;
    const uint32_t *stack_id;
} fd_columns_t;

static inline uint64_t fd_site_key(uint32_t stack, uint8_t domain)
{
    return (uint64_t)stack | ((uint64_t)domain << 32);
}

static inline fd_entry_t *fd_entry(const fold_t *f, uint32_t i)
{
    return &f->chunks[i >> FD_CHUNK_BITS][i & ((1u << FD_CHUNK_BITS) - 1)];
}

/* A site's live bytes in a slot. Slot-major: the slot being written now is one compact
 * column for all the sites, which stays cached. */
static inline int64_t *fd_sv(const fold_t *f, uint32_t site, int64_t slot)
{
    return f->series + (size_t)slot * f->sites_cap + site;
}

/* _fold_core.c; functions returning int give 0, or -1 when memory ran out. Hidden: only
 * PyInit__fold leaves the shared object (and calls between the files skip the PLT). */
#pragma GCC visibility push(hidden)
int fd_init(fold_t *f, const fd_params_t *p);
void fd_free(fold_t *f);
/* Fold events [0, n); returns how many were folded (< n only when memory ran out). */
size_t fd_feed(fold_t *f, const fd_columns_t *c, size_t n);
int fd_set_sampling(fold_t *f, uint32_t pid, int64_t sample_bytes);
int fd_watch(fold_t *f, uint32_t pid, uint64_t address, int64_t ts_ns);

/* Lookups and inserts for restore (and the fold itself). */
fd_proc_t *fd_proc_new(fold_t *f, uint32_t pid, int64_t ts);
fd_proc_t *fd_proc_find(const fold_t *f, uint32_t pid);
int fd_all_init(fold_t *f, int64_t origin);
int fd_room(fold_t *f, fd_proc_t *proc, size_t events);
fd_site_t *fd_site_get(fold_t *f, uint32_t pid, uint32_t stack, uint8_t domain, uint32_t *idx);
fd_thread_t *fd_thread_get(fold_t *f, uint32_t pid, uint64_t tid);
fd_size_t *fd_size_get(fold_t *f, uint32_t pid, uint64_t size);
fd_entry_t *fd_block_get(fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx);
fd_entry_t *fd_block_find(const fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx);
void fd_large_add(fd_proc_t *proc, fd_entry_t *e, uint32_t idx, uint64_t address);
void fd_large_remove(fold_t *f, fd_proc_t *proc, fd_entry_t *e);
void *fd_vec_push(fd_vec_t *v); /* room must have been made (fd_vec_reserve) */
int fd_vec_reserve(fd_vec_t *v, size_t more);
uint64_t fd_index_find(const fd_index_t *ix, uint32_t pid, uint64_t key); /* idx+1 or 0 */
int fd_width_shift(int64_t width); /* log2 of a power of two, else -1 */
/* Add to the temporal cell (site, a, e) (room made by fd_room). */
void fd_tm_add(fold_t *f, uint32_t site, int64_t a, int64_t e, int64_t bytes, int64_t count);
#pragma GCC visibility pop

#endif
