/* memscope fold: hash tables and the per-event fold of the C twin (see _fold.h). */
#include "_fold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FD_LIKELY(x) __builtin_expect(!!(x), 1)
#define FD_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* the per-event path is inlined into the loop (one function: no calls, fewer spills) */
#define FD_HOT static inline __attribute__((always_inline))
#define FD_COLD static __attribute__((noinline))

/* ---- open addressing -------------------------------------------------------------------- */

/* Multiplicative hashing: a key's home slot is the top bits of (key ^ pid mix) * odd
 * constant (two multiplications; the pid's mix is shared by an event's keys). */
#define FD_K1 0x9E3779B97F4A7C15ull
#define FD_K2 0xD6E8FEB86659FD93ull

static inline uint64_t fd_pidmix(uint32_t pid)
{
    return (uint64_t)pid * FD_K1;
}

static inline uint64_t fd_hashm(uint64_t pidmix, uint64_t key)
{
    return (key ^ pidmix) * FD_K2;
}

static inline uint64_t fd_hash(uint32_t pid, uint64_t key)
{
    return fd_hashm(fd_pidmix(pid), key);
}

static int fd_index_init(fd_index_t *ix, uint64_t capacity)
{
    ix->slots = calloc(capacity, sizeof(fd_slot_t));
    ix->mask = capacity - 1;
    ix->n = 0;
    ix->shift = 64 - __builtin_ctzll(capacity);
    return ix->slots ? 0 : -1;
}

/* The slot holding (pid, key), or the empty slot where it would go; h = fd_hash(pid, key). */
static inline fd_slot_t *fd_index_slot_h(const fd_index_t *ix, uint32_t pid, uint64_t key,
                                         uint64_t h)
{
    uint64_t i = h >> ix->shift;
    for (;;) {
        fd_slot_t *s = &ix->slots[i];
        if (!s->idx || (s->key == key && s->pid == pid))
            return s;
        i = (i + 1) & ix->mask;
    }
}

static inline fd_slot_t *fd_index_slot(const fd_index_t *ix, uint32_t pid, uint64_t key)
{
    return fd_index_slot_h(ix, pid, key, fd_hash(pid, key));
}

uint64_t fd_index_find(const fd_index_t *ix, uint32_t pid, uint64_t key)
{
    return fd_index_slot(ix, pid, key)->idx;
}

static inline void fd_index_put(fd_index_t *ix, fd_slot_t *s, uint32_t pid, uint64_t key,
                                uint32_t idx)
{
    s->key = key;
    s->pid = pid;
    s->idx = idx + 1;
    ix->n++;
}

/* Room for `more` inserts at a load of at most one half. */
static int fd_index_room(fd_index_t *ix, uint64_t more)
{
    uint64_t capacity = ix->mask + 1;
    if ((ix->n + more) * 2 <= capacity)
        return 0;
    while ((ix->n + more) * 2 > capacity)
        capacity *= 2;
    fd_slot_t *slots = calloc(capacity, sizeof(fd_slot_t));
    if (!slots)
        return -1;
    fd_index_t grown = {slots, capacity - 1, ix->n, 64 - __builtin_ctzll(capacity)};
    for (uint64_t i = 0; i <= ix->mask; i++) {
        fd_slot_t *s = &ix->slots[i];
        if (s->idx)
            *fd_index_slot(&grown, s->pid, s->key) = *s;
    }
    free(ix->slots);
    *ix = grown;
    return 0;
}

static inline int fd_index_ok(const fd_index_t *ix, uint64_t more)
{
    return (ix->n + more) * 2 <= ix->mask + 1;
}

/* ---- growable arrays -------------------------------------------------------------------- */

int fd_vec_reserve(fd_vec_t *v, size_t more)
{
    if (v->n + more <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap * 2 : 16;
    while (cap < v->n + more)
        cap *= 2;
    char *data = realloc(v->data, cap * v->item);
    if (!data)
        return -1;
    v->data = data;
    v->cap = cap;
    return 0;
}

void *fd_vec_push(fd_vec_t *v)
{
    void *item = v->data + v->n * v->item;
    v->n++;
    memset(item, 0, v->item);
    return item;
}

#define FD_VEC_AT(v, type, i) ((type *)((v)->data) + (i))

/* ---- state ------------------------------------------------------------------------------ */

int fd_width_shift(int64_t width)
{
    if (width < 1 || (width & (width - 1)))
        return -1;
    return __builtin_ctzll((uint64_t)width);
}

int fd_init(fold_t *f, const fd_params_t *p)
{
    memset(f, 0, sizeof(*f));
    f->p = *p;
    f->slot_shift = fd_width_shift(p->timeline_buckets / p->site_slots);
    f->tm_shift = fd_width_shift(
        p->timeline_buckets > FD_TEMPORAL_SLOTS ? p->timeline_buckets / FD_TEMPORAL_SLOTS : 1);
    f->tcells.item = sizeof(fd_tcell_t);
    f->sampling.item = sizeof(fd_mark_t);
    f->threads.item = sizeof(fd_thread_t);
    f->sizes.item = sizeof(fd_size_t);
    f->watched.item = sizeof(fd_mark_t);
    f->findings.item = sizeof(fd_finding_t);
    f->oversized.item = sizeof(fd_oversized_t);
    f->deaths.item = sizeof(fd_mark_t);
    f->all_peak_ts = f->all_w_peak_ts = -1;
    if (fd_index_init(&f->proc_ix, 16) || fd_index_init(&f->site_ix, 256) ||
        fd_index_init(&f->thread_ix, 64) || fd_index_init(&f->size_ix, 256) ||
        fd_index_init(&f->block_ix, 1024) || fd_index_init(&f->watch_ix, 16) ||
        fd_index_init(&f->tm_ix, 256))
        return -1;
    return 0;
}

void fd_free(fold_t *f)
{
    for (uint32_t i = 0; i < f->nprocs; i++) {
        free(f->procs[i]->buckets);
        free(f->procs[i]->small);
        free(f->procs[i]->large);
        free(f->procs[i]);
    }
    free(f->procs);
    for (uint32_t i = 0; i < f->nchunks; i++)
        free(f->chunks[i]);
    free(f->chunks);
    fd_index_t *ixs[] = {&f->proc_ix,  &f->site_ix,  &f->thread_ix, &f->size_ix,
                         &f->block_ix, &f->watch_ix, &f->tm_ix};
    for (size_t i = 0; i < sizeof(ixs) / sizeof(ixs[0]); i++)
        free(ixs[i]->slots);
    fd_vec_t *vecs[] = {&f->sampling, &f->threads,   &f->sizes,  &f->watched,
                        &f->findings, &f->oversized, &f->deaths, &f->tcells};
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++)
        free(vecs[i]->data);
    free(f->sites);
    free(f->site_reused);
    free(f->site_domain);
    free(f->series);
    free(f->all_buckets);
    memset(f, 0, sizeof(*f));
}

fd_proc_t *fd_proc_find(const fold_t *f, uint32_t pid)
{
    uint64_t idx = fd_index_find(&f->proc_ix, pid, 0);
    return idx ? f->procs[idx - 1] : NULL;
}

fd_proc_t *fd_proc_new(fold_t *f, uint32_t pid, int64_t ts)
{
    if (fd_index_room(&f->proc_ix, 1))
        return NULL;
    if (f->nprocs == f->procs_cap) {
        uint32_t cap = f->procs_cap ? f->procs_cap * 2 : 8;
        fd_proc_t **procs = realloc(f->procs, cap * sizeof(*procs));
        if (!procs)
            return NULL;
        f->procs = procs;
        f->procs_cap = cap;
    }
    fd_proc_t *proc = calloc(1, sizeof(*proc));
    if (!proc)
        return NULL;
    proc->buckets = calloc((size_t)f->p.timeline_buckets, sizeof(fd_bucket_t));
    proc->small = calloc(FD_SMALL, sizeof(int64_t));
    proc->large_cap = 16;
    proc->large = malloc(proc->large_cap * sizeof(fd_large_t));
    if (!proc->buckets || !proc->large || !proc->small) {
        free(proc->buckets);
        free(proc->small);
        free(proc->large);
        free(proc);
        return NULL;
    }
    fd_proc_row_t *r = &proc->r;
    r->pid = pid;
    for (size_t i = 0; i < f->sampling.n; i++) {
        fd_mark_t *m = FD_VEC_AT(&f->sampling, fd_mark_t, i);
        if (m->pid == pid)
            r->sample_bytes = m->ts_ns;
    }
    r->origin_ts_ns = ts;
    r->width_ns = f->p.initial_width_ns;
    proc->shift = fd_width_shift(r->width_ns);
    r->first_ts_ns = r->last_ts_ns = ts;
    r->first_alloc_ts_ns = r->last_alloc_ts_ns = -1;
    r->peak_ts_ns = r->w_peak_ts_ns = -1;
    fd_index_put(&f->proc_ix, fd_index_slot(&f->proc_ix, pid, 0), pid, 0, f->nprocs);
    f->procs[f->nprocs++] = proc;
    return proc;
}

int fd_all_init(fold_t *f, int64_t origin)
{
    f->all_buckets = calloc((size_t)f->p.timeline_buckets, sizeof(fd_bucket_t));
    if (!f->all_buckets)
        return -1;
    f->has_all = 1;
    f->all_origin = origin;
    f->all_shift = fd_width_shift(f->p.initial_width_ns);
    return 0;
}

static int fd_grow_sites(fold_t *f)
{
    uint32_t cap = f->sites_cap ? f->sites_cap * 2 : 64;
    if (cap <= f->sites_cap)
        return -1;
    fd_site_t *sites = aligned_alloc(64, (size_t)cap * sizeof(fd_site_t));
    if (!sites)
        return -1;
    if (f->nsites)
        memcpy(sites, f->sites, (size_t)f->nsites * sizeof(fd_site_t));
    free(f->sites);
    f->sites = sites;
    int64_t *reused = realloc(f->site_reused, (size_t)cap * sizeof(int64_t));
    if (!reused)
        return -1;
    f->site_reused = reused;
    uint8_t *domains = realloc(f->site_domain, (size_t)cap);
    if (!domains)
        return -1;
    f->site_domain = domains;
    int64_t *series = malloc((size_t)cap * (size_t)f->p.site_slots * 8);
    if (!series)
        return -1;
    for (int64_t s = 0; s < f->p.site_slots && f->nsites; s++)
        memcpy(series + (size_t)s * cap, fd_sv(f, 0, s), (size_t)f->nsites * 8);
    free(f->series);
    f->series = series;
    f->sites_cap = cap;
    return 0;
}

static int fd_grow_blocks(fold_t *f)
{
    if (f->nchunks == f->chunks_cap) {
        uint32_t cap = f->chunks_cap ? f->chunks_cap * 2 : 16;
        fd_entry_t **chunks = realloc(f->chunks, cap * sizeof(*chunks));
        if (!chunks)
            return -1;
        f->chunks = chunks;
        f->chunks_cap = cap;
    }
    if (f->nchunks >= (1u << (32 - FD_CHUNK_BITS)) - 1)
        return -1; /* 2**32 - 65536 addresses: indices are 32 bits */
    fd_entry_t *chunk = aligned_alloc(64, sizeof(fd_entry_t) << FD_CHUNK_BITS);
    if (!chunk)
        return -1;
    f->chunks[f->nchunks++] = chunk;
    return 0;
}

static int fd_room_slow(fold_t *f, fd_proc_t *proc, uint64_t events)
{
    uint64_t k = 2 * events;
    if (fd_index_room(&f->site_ix, k) || fd_index_room(&f->thread_ix, k) ||
        fd_index_room(&f->size_ix, k) || fd_index_room(&f->block_ix, k) ||
        fd_index_room(&f->tm_ix, k))
        return -1;
    if ((uint64_t)f->nsites + k > UINT32_MAX - 1 || (uint64_t)f->nblocks + k > UINT32_MAX - 1)
        return -1; /* indices are 32 bits */
    while ((uint64_t)f->nsites + k > f->sites_cap)
        if (fd_grow_sites(f))
            return -1;
    while ((uint64_t)f->nblocks + k > ((uint64_t)f->nchunks << FD_CHUNK_BITS))
        if (fd_grow_blocks(f))
            return -1;
    if (fd_vec_reserve(&f->threads, k) || fd_vec_reserve(&f->sizes, k) ||
        fd_vec_reserve(&f->findings, events) || fd_vec_reserve(&f->oversized, events) ||
        fd_vec_reserve(&f->deaths, events) || fd_vec_reserve(&f->tcells, k))
        return -1;
    if (proc && proc->nlarge + 2 > proc->large_cap) {
        fd_large_t *large = realloc(proc->large, (size_t)proc->large_cap * 2 * sizeof(*large));
        if (!large)
            return -1;
        proc->large = large;
        proc->large_cap *= 2;
    }
    return 0;
}

/* Room for the inserts of `events` events (at most two per table and one per list each),
 * and for one more large block of `proc`. */
int fd_room(fold_t *f, fd_proc_t *proc, size_t events)
{
    uint64_t k = 2 * (uint64_t)events;
    if (FD_LIKELY(fd_index_ok(&f->site_ix, k) && fd_index_ok(&f->thread_ix, k) &&
                  fd_index_ok(&f->size_ix, k) && fd_index_ok(&f->block_ix, k) &&
                  fd_index_ok(&f->tm_ix, k) && f->tcells.n + k <= f->tcells.cap &&
                  f->nsites + k <= f->sites_cap &&
                  (uint64_t)f->nblocks + k <= ((uint64_t)f->nchunks << FD_CHUNK_BITS) &&
                  f->threads.n + k <= f->threads.cap && f->sizes.n + k <= f->sizes.cap &&
                  f->findings.n + events <= f->findings.cap &&
                  f->oversized.n + events <= f->oversized.cap &&
                  f->deaths.n + events <= f->deaths.cap &&
                  (!proc || proc->nlarge + 2 <= proc->large_cap)))
        return 0;
    return fd_room_slow(f, proc, events);
}

/* ---- lookups (room made by fd_room) ----------------------------------------------------- */

FD_HOT fd_site_t *fd_site(fold_t *f, fd_proc_t *proc, uint32_t stack, uint8_t domain, uint32_t *idx)
{
    uint32_t pid = proc->r.pid;
    uint32_t c = f->c_site;
    if (c && f->sites[c - 1].stack_id == stack && f->sites[c - 1].pid == pid &&
        f->site_domain[c - 1] == domain) {
        *idx = c - 1;
        return &f->sites[c - 1];
    }
    uint64_t key = fd_site_key(stack, domain);
    fd_slot_t *s = fd_index_slot(&f->site_ix, pid, key);
    uint32_t i;
    if (FD_LIKELY(s->idx)) {
        i = s->idx - 1;
    } else {
        i = f->nsites++;
        fd_index_put(&f->site_ix, s, pid, key, i);
        fd_site_t *site = &f->sites[i];
        memset(site, 0, sizeof(*site));
        site->pid = pid;
        site->stack_id = stack;
        f->site_domain[i] = domain;
        site->last_slot = -1;
        site->pv = proc->peak_version;
        site->av = f->all_version;
        f->site_reused[i] = 0;
        for (int64_t j = 0; j < f->p.site_slots; j++)
            *fd_sv(f, i, j) = 0;
    }
    f->c_site = i + 1;
    *idx = i;
    return &f->sites[i];
}

fd_site_t *fd_site_get(fold_t *f, uint32_t pid, uint32_t stack, uint8_t domain, uint32_t *idx)
{
    fd_proc_t *proc = fd_proc_find(f, pid);
    return proc ? fd_site(f, proc, stack, domain, idx) : NULL;
}

FD_HOT fd_thread_t *fd_thread(fold_t *f, uint32_t pid, uint64_t tid)
{
    uint32_t *cache = &f->c_thread[fd_hash(pid, tid) >> 60]; /* FD_CACHE == 16 */
    uint32_t c = *cache;
    if (c) {
        fd_thread_t *t = FD_VEC_AT(&f->threads, fd_thread_t, c - 1);
        if (t->tid == tid && t->pid == pid)
            return t;
    }
    fd_slot_t *s = fd_index_slot(&f->thread_ix, pid, tid);
    fd_thread_t *t;
    if (FD_LIKELY(s->idx)) {
        t = FD_VEC_AT(&f->threads, fd_thread_t, s->idx - 1);
    } else {
        fd_index_put(&f->thread_ix, s, pid, tid, (uint32_t)f->threads.n);
        t = fd_vec_push(&f->threads);
        t->pid = pid;
        t->tid = tid;
    }
    *cache = s->idx;
    return t;
}

fd_thread_t *fd_thread_get(fold_t *f, uint32_t pid, uint64_t tid)
{
    return fd_thread(f, pid, tid);
}

static inline fd_size_t *fd_size(fold_t *f, uint32_t pid, uint64_t size)
{
    uint32_t c = f->c_size;
    if (c) {
        fd_size_t *z = FD_VEC_AT(&f->sizes, fd_size_t, c - 1);
        if (z->size == size && z->pid == pid)
            return z;
    }
    fd_slot_t *s = fd_index_slot(&f->size_ix, pid, size);
    fd_size_t *z;
    if (FD_LIKELY(s->idx)) {
        z = FD_VEC_AT(&f->sizes, fd_size_t, s->idx - 1);
    } else {
        fd_index_put(&f->size_ix, s, pid, size, (uint32_t)f->sizes.n);
        z = fd_vec_push(&f->sizes);
        z->pid = pid;
        z->size = size;
    }
    f->c_size = s->idx;
    return z;
}

fd_size_t *fd_size_get(fold_t *f, uint32_t pid, uint64_t size)
{
    return fd_size(f, pid, size);
}

FD_HOT fd_entry_t *fd_block_lookup(const fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx)
{
    uint32_t i = fd_index_slot(&f->block_ix, pid, address)->idx;
    if (!i)
        return NULL;
    *idx = i - 1;
    return fd_entry(f, i - 1);
}

fd_entry_t *fd_block_find(const fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx)
{
    return fd_block_lookup(f, pid, address, idx);
}

/* The entry of (pid, address), created (state 0) when there is none. */
FD_HOT fd_entry_t *fd_block(fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx)
{
    fd_slot_t *s = fd_index_slot(&f->block_ix, pid, address);
    if (FD_LIKELY(s->idx)) {
        *idx = s->idx - 1;
        return fd_entry(f, s->idx - 1);
    }
    uint32_t i = f->nblocks++;
    fd_index_put(&f->block_ix, s, pid, address, i);
    fd_entry_t *e = fd_entry(f, i);
    memset(e, 0, sizeof(*e));
    e->end_ts_ns = -1;
    *idx = i;
    return e;
}

fd_entry_t *fd_block_get(fold_t *f, uint32_t pid, uint64_t address, uint32_t *idx)
{
    return fd_block(f, pid, address, idx);
}

void fd_large_add(fd_proc_t *proc, fd_entry_t *e, uint32_t idx, uint64_t address)
{
    proc->large[proc->nlarge] = (fd_large_t){address, idx};
    e->large = ++proc->nlarge;
}

void fd_large_remove(fold_t *f, fd_proc_t *proc, fd_entry_t *e)
{
    uint32_t at = e->large - 1;
    fd_large_t moved = proc->large[--proc->nlarge];
    if (at != proc->nlarge) {
        proc->large[at] = moved;
        fd_entry(f, moved.idx)->large = at + 1;
    }
    e->large = 0;
}

/* ---- configuration ---------------------------------------------------------------------- */

int fd_set_sampling(fold_t *f, uint32_t pid, int64_t sample_bytes)
{
    for (size_t i = 0; i < f->sampling.n; i++) {
        fd_mark_t *m = FD_VEC_AT(&f->sampling, fd_mark_t, i);
        if (m->pid == pid) {
            m->ts_ns = sample_bytes;
            goto set;
        }
    }
    if (fd_vec_reserve(&f->sampling, 1))
        return -1;
    fd_mark_t *m = fd_vec_push(&f->sampling);
    m->pid = pid;
    m->ts_ns = sample_bytes;
set:;
    fd_proc_t *proc = fd_proc_find(f, pid);
    if (proc)
        proc->r.sample_bytes = sample_bytes;
    return 0;
}

int fd_watch(fold_t *f, uint32_t pid, uint64_t address, int64_t ts_ns)
{
    if (fd_index_room(&f->watch_ix, 1) || fd_vec_reserve(&f->watched, 1) ||
        fd_vec_reserve(&f->deaths, 1))
        return -1;
    fd_slot_t *s = fd_index_slot(&f->watch_ix, pid, address);
    if (s->idx) {
        fd_mark_t *m = FD_VEC_AT(&f->watched, fd_mark_t, s->idx - 1);
        if (ts_ns < m->ts_ns)
            m->ts_ns = ts_ns;
        return 0;
    }
    fd_index_put(&f->watch_ix, s, pid, address, (uint32_t)f->watched.n);
    fd_mark_t *m = fd_vec_push(&f->watched);
    m->pid = pid;
    m->address = address;
    m->ts_ns = ts_ns;
    uint32_t idx;
    fd_entry_t *e = fd_block_find(f, pid, address, &idx);
    if (e && e->state != FD_LIVE && e->end_kind == FD_FREE && e->end_ts_ns >= ts_ns) {
        fd_mark_t *d = fd_vec_push(&f->deaths);
        d->pid = pid;
        d->address = address;
        d->ts_ns = e->end_ts_ns;
    }
    return 0;
}

/* ---- time buckets ----------------------------------------------------------------------- */

static void fd_double(fd_bucket_t *bk, int64_t n)
{
    int64_t j;
    for (j = 0; 2 * j < n; j++) {
        fd_bucket_t a = bk[2 * j];
        if (2 * j + 1 < n) {
            const fd_bucket_t *l = &bk[2 * j + 1];
            if (!a.events) {
                a = *l;
            } else if (l->events) {
                a.live_bytes = l->live_bytes;
                if (l->max_live_bytes > a.max_live_bytes)
                    a.max_live_bytes = l->max_live_bytes;
                a.events += l->events;
                a.allocations += l->allocations;
                a.frees += l->frees;
                a.bytes_allocated += l->bytes_allocated;
                a.bytes_freed += l->bytes_freed;
            }
        }
        bk[j] = a;
    }
    memset(bk + j, 0, (size_t)(n - j) * sizeof(fd_bucket_t));
}

/* Each series of the process after its width doubled: slot s becomes s // 2, holding the
 * value at the end of the later of the two. */
static void fd_halve_series(fold_t *f, uint32_t pid)
{
    int64_t slots = f->p.site_slots;
    for (uint32_t i = 0; i < f->nsites; i++) {
        fd_site_t *site = &f->sites[i];
        if (site->pid != pid || site->last_slot < 0)
            continue;
        int64_t last = site->last_slot, new_last = last / 2, v = *fd_sv(f, i, last);
        for (int64_t j = 0; j < new_last; j++)
            *fd_sv(f, i, j) = *fd_sv(f, i, 2 * j + 1);
        for (int64_t j = new_last; j < slots; j++)
            *fd_sv(f, i, j) = v;
        site->last_slot = new_last;
    }
}

/* The fine bucket of ts; doubles the width (and halves the series) until it fits. */
/* The width doubles (and the series halve) until the bucket of ts fits. */
FD_COLD void fd_proc_widen(fold_t *f, fd_proc_t *proc, uint64_t d)
{
    uint64_t n = (uint64_t)f->p.timeline_buckets;
    while (proc->shift < 64 && (d >> proc->shift) >= n) {
        fd_double(proc->buckets, (int64_t)n);
        fd_halve_series(f, proc->r.pid);
        proc->shift++;
        proc->r.width_ns = (int64_t)((uint64_t)proc->r.width_ns << 1);
    }
}

/* ---- temporal cells --------------------------------------------------------------------- */

void fd_tm_add(fold_t *f, uint32_t site, int64_t a, int64_t e, int64_t bytes, int64_t count)
{
    uint64_t key = fd_tm_key(a, e);
    fd_slot_t *s = fd_index_slot(&f->tm_ix, site, key);
    fd_tcell_t *c;
    if (s->idx) {
        c = FD_VEC_AT(&f->tcells, fd_tcell_t, s->idx - 1);
    } else {
        fd_index_put(&f->tm_ix, s, site, key, (uint32_t)f->tcells.n);
        c = fd_vec_push(&f->tcells);
        c->site = site;
        c->a = a;
        c->e = e;
    }
    c->bytes += bytes;
    c->count += count;
}

/* The all-process width doubled: cell (a, e) becomes (a / 2, e / 2); cells meeting add up,
 * those with a == e leave. In place: the index is rebuilt (it only gets emptier). */
static void fd_tm_halve(fold_t *f)
{
    fd_tcell_t *cells = (fd_tcell_t *)f->tcells.data;
    size_t n = f->tcells.n, k = 0;
    memset(f->tm_ix.slots, 0, (size_t)(f->tm_ix.mask + 1) * sizeof(fd_slot_t));
    f->tm_ix.n = 0;
    for (size_t i = 0; i < n; i++) {
        fd_tcell_t c = cells[i];
        c.a >>= 1;
        c.e >>= 1;
        if (c.a == c.e)
            continue;
        uint64_t key = fd_tm_key(c.a, c.e);
        fd_slot_t *s = fd_index_slot(&f->tm_ix, c.site, key);
        if (s->idx) {
            cells[s->idx - 1].bytes += c.bytes;
            cells[s->idx - 1].count += c.count;
        } else {
            fd_index_put(&f->tm_ix, s, c.site, key, (uint32_t)k);
            cells[k++] = c;
        }
    }
    f->tcells.n = k;
}

/* The temporal slot of ts (the all-process timeline already fits it). */
static inline int64_t fd_tm_slot(const fold_t *f, int64_t ts)
{
    if (ts < f->all_origin || f->all_shift >= 64)
        return 0;
    return (int64_t)((((uint64_t)ts - (uint64_t)f->all_origin) >> f->all_shift) >> f->tm_shift);
}

FD_COLD void fd_all_widen(fold_t *f, uint64_t d)
{
    uint64_t n = (uint64_t)f->p.timeline_buckets;
    while (f->all_shift < 64 && (d >> f->all_shift) >= n) {
        fd_double(f->all_buckets, (int64_t)n);
        fd_tm_halve(f);
        f->all_shift++;
    }
}

/* The fine bucket of ts (the width doubles until it fits). */
FD_HOT int64_t fd_proc_bucket(fold_t *f, fd_proc_t *proc, int64_t ts)
{
    if (FD_UNLIKELY(ts < proc->r.origin_ts_ns))
        return 0;
    uint64_t d = (uint64_t)ts - (uint64_t)proc->r.origin_ts_ns;
    if (FD_UNLIKELY(proc->shift >= 64 || (d >> proc->shift) >= (uint64_t)f->p.timeline_buckets))
        fd_proc_widen(f, proc, d);
    return proc->shift < 64 ? (int64_t)(d >> proc->shift) : 0;
}

FD_HOT int64_t fd_all_bucket(fold_t *f, int64_t ts)
{
    if (FD_UNLIKELY(ts < f->all_origin))
        return 0;
    uint64_t d = (uint64_t)ts - (uint64_t)f->all_origin;
    if (FD_UNLIKELY(f->all_shift >= 64 || (d >> f->all_shift) >= (uint64_t)f->p.timeline_buckets))
        fd_all_widen(f, d);
    return f->all_shift < 64 ? (int64_t)(d >> f->all_shift) : 0;
}

static inline void fd_close(fd_bucket_t *b, int64_t live)
{
    b->max_live_bytes = (b->events && b->max_live_bytes > live) ? b->max_live_bytes : live;
    b->events++;
    b->live_bytes = live;
}

/* ---- the fold --------------------------------------------------------------------------- */

/* Sampled weight 1/p (computed exactly as fold.sample_weight / weighted_bytes). */
static inline double fd_weight(uint64_t size, int64_t sample_bytes)
{
    uint64_t m = size > 1 ? size : 1;
    return 1.0 / (1.0 - exp(-(double)m / (double)sample_bytes));
}

static inline int64_t fd_weighted_bytes(uint64_t size, double w)
{
    return (int64_t)floor((double)size * w + 0.5);
}

typedef struct {
    fd_proc_t *proc;
    uint64_t tid, seq;
    int64_t ts;
    uint8_t domain;
    uint32_t stack;
    int64_t b, ab, slot, tslot;
} fd_ev_t;

/* A site's live figures change: save its peak snapshots, fill its series up to `slot`. */
FD_HOT void fd_site_live(fold_t *f, fd_proc_t *proc, fd_site_t *site, uint32_t idx, int64_t slot,
                         int64_t blocks, int64_t nbytes)
{
    if (site->pv != proc->peak_version) {
        site->peak_blocks = site->live_blocks;
        site->peak_bytes = site->live_bytes;
        site->pv = proc->peak_version;
    }
    if (site->av != f->all_version) {
        site->all_peak_blocks = site->live_blocks;
        site->all_peak_bytes = site->live_bytes;
        site->av = f->all_version;
    }
    if (slot < site->last_slot)
        slot = site->last_slot;
    else
        for (int64_t s = site->last_slot + 1; s < slot; s++)
            *fd_sv(f, idx, s) = site->live_bytes;
    site->live_blocks += blocks;
    site->live_bytes += nbytes;
    *fd_sv(f, idx, slot) = site->live_bytes;
    site->last_slot = slot;
}

/* A live block leaves every live figure (freed, reallocated or reused). */
/* (The block's site and thread are handed back: ends count in them too. Returns the
 * block's sampled weight, 0 when the process is not sampled.) */
FD_HOT double fd_leave(fold_t *f, fd_proc_t *proc, fd_entry_t *e, const fd_ev_t *ev,
                       fd_site_t **site_out, fd_thread_t **thread_out)
{
    int64_t size = (int64_t)e->size;
    double w = 0.0;
    proc->r.live_blocks -= 1;
    proc->r.live_bytes -= size;
    uint32_t si;
    fd_site_t *site = fd_site(f, proc, e->stack_id, e->domain, &si);
    fd_site_live(f, proc, site, si, ev->slot, -1, -size);
    if (ev->tslot > 0) {
        int64_t a = fd_tm_slot(f, e->ts_ns);
        if (a < ev->tslot)
            fd_tm_add(f, si, a, ev->tslot, size, 1);
    }
    fd_thread_t *t = fd_thread(f, proc->r.pid, e->tid);
    t->live_blocks -= 1;
    t->live_bytes -= size;
    f->all_live -= size;
    if (FD_UNLIKELY(e->large))
        fd_large_remove(f, proc, e);
    if (FD_UNLIKELY(proc->r.sample_bytes)) {
        w = fd_weight(e->size, proc->r.sample_bytes);
        proc->r.w_live_blocks -= w;
        proc->r.w_live_bytes -= (double)e->size * w;
        int64_t wb = fd_weighted_bytes(e->size, w);
        proc->r.w_live_rounded -= wb;
        f->all_w_live -= wb;
    } else {
        f->all_w_live -= size;
    }
    *site_out = site;
    *thread_out = t;
    return w;
}

FD_HOT void fd_start(fold_t *f, const fd_ev_t *ev, uint8_t kind, uint64_t address, uint64_t usize)
{
    fd_proc_t *proc = ev->proc;
    fd_proc_row_t *r = &proc->r;
    uint32_t pid = r->pid, eidx, si;
    int64_t size = (int64_t)usize, ts = ev->ts;
    fd_entry_t *e = fd_block(f, pid, address, &eidx);
    if (e->state == FD_LIVE) {
        fd_site_t *old_site;
        fd_thread_t *old_thread;
        r->reused += 1;
        r->reused_bytes += (int64_t)e->size;
        fd_leave(f, proc, e, ev, &old_site, &old_thread);
        f->site_reused[old_site - f->sites] += 1;
    }
    e->state = FD_LIVE;
    e->kind = kind;
    e->domain = ev->domain;
    e->tid = ev->tid;
    e->seq = ev->seq;
    e->ts_ns = ts;
    e->size = usize;
    e->stack_id = ev->stack;
    e->end_ts_ns = -1;
    e->end_kind = e->end_domain = 0;
    e->end_tid = 0;
    e->end_stack_id = 0;
    r->allocations += 1;
    r->bytes_allocated += size;
    r->live_blocks += 1;
    r->live_bytes += size;
    if (r->first_alloc_ts_ns < 0 || ts < r->first_alloc_ts_ns)
        r->first_alloc_ts_ns = ts;
    if (ts > r->last_alloc_ts_ns)
        r->last_alloc_ts_ns = ts;
    fd_site_t *site = fd_site(f, proc, ev->stack, ev->domain, &si);
    site->allocations += 1;
    site->bytes_allocated += size;
    fd_site_live(f, proc, site, si, ev->slot, 1, size);
    fd_thread_t *t = fd_thread(f, pid, ev->tid);
    t->allocations += 1;
    t->bytes_allocated += size;
    t->live_blocks += 1;
    t->live_bytes += size;
    if (usize < FD_SMALL)
        proc->small[usize] += 1;
    else
        fd_size(f, pid, usize)->count += 1;
    fd_bucket_t *bk = &proc->buckets[ev->b];
    bk->allocations += 1;
    bk->bytes_allocated += size;
    bk = &f->all_buckets[ev->ab];
    bk->allocations += 1;
    bk->bytes_allocated += size;
    if (usize > (uint64_t)f->p.interior_probe_bytes)
        fd_large_add(proc, e, eidx, address);
    if (f->p.oversized_bytes <= 0 || usize >= (uint64_t)f->p.oversized_bytes) {
        r->oversized += 1;
        if (proc->kept[0] < f->p.keep_findings) {
            proc->kept[0] += 1;
            fd_oversized_t *o = fd_vec_push(&f->oversized);
            o->pid = pid;
            o->tid = ev->tid;
            o->ts_ns = ts;
            o->address = address;
            o->size = usize;
            o->domain = ev->domain;
            o->stack_id = ev->stack;
            o->free_ts_ns = -1;
        }
    }
    f->all_live += size;
    if (r->sample_bytes) {
        double w = fd_weight(usize, r->sample_bytes);
        int64_t wb = fd_weighted_bytes(usize, w);
        r->w_allocations += w;
        r->w_bytes_allocated += (double)usize * w;
        r->w_live_blocks += w;
        r->w_live_bytes += (double)usize * w;
        r->w_live_rounded += wb;
        f->all_w_live += wb;
        if (r->w_live_rounded > r->w_peak_bytes) {
            r->w_peak_bytes = r->w_live_rounded;
            r->w_peak_ts_ns = ts;
        }
    } else {
        f->all_w_live += size;
    }
    if (r->live_bytes > r->peak_bytes) {
        r->peak_bytes = r->live_bytes;
        r->peak_ts_ns = ts;
        proc->peak_version++;
    }
    if (f->all_live > f->all_peak) {
        f->all_peak = f->all_live;
        f->all_peak_ts = ts;
        f->all_version++;
    }
    if (f->all_w_live > f->all_w_peak) {
        f->all_w_peak = f->all_w_live;
        f->all_w_peak_ts = ts;
    }
}

FD_COLD fd_finding_t *fd_finding(fold_t *f, fd_proc_t *proc, uint8_t type, const fd_ev_t *ev,
                                 uint64_t address, uint8_t kind, const fd_entry_t *e)
{
    if (proc->kept[type] >= f->p.keep_findings)
        return NULL;
    proc->kept[type] += 1;
    fd_finding_t *x = fd_vec_push(&f->findings);
    x->type = type;
    x->pid = proc->r.pid;
    x->tid = ev->tid;
    x->seq = ev->seq;
    x->ts_ns = ev->ts;
    x->address = address;
    x->kind = kind;
    x->domain = ev->domain;
    x->stack_id = ev->stack;
    x->alloc_ts_ns = e->ts_ns;
    x->alloc_domain = e->domain;
    x->alloc_tid = e->tid;
    x->alloc_stack_id = e->stack_id;
    x->size = e->size;
    x->block_address = address;
    x->prev_end_ts_ns = -1;
    return x;
}

static inline int fd_holds(const fd_entry_t *e, uint64_t start, uint64_t address, uint8_t domain,
                           int64_t ts)
{
    return e->state == FD_LIVE && e->domain == domain && start < address &&
           address - start < e->size && e->ts_ns < ts;
}

/* An unmatched free: does it point inside a live block? */
FD_COLD void fd_interior(fold_t *f, const fd_ev_t *ev, uint64_t address)
{
    fd_proc_t *proc = ev->proc;
    if (proc->r.interior_checked >= f->p.max_interior_checks) {
        proc->r.interior_unchecked += 1;
        return;
    }
    proc->r.interior_checked += 1;
    uint32_t pid = proc->r.pid, idx;
    uint64_t probe = (uint64_t)f->p.interior_probe_bytes;
    uint64_t lowest = address > probe ? address - probe : 0;
    const fd_entry_t *found = NULL;
    uint64_t found_at = 0;
    for (uint64_t c = (address - 1) & ~(uint64_t)(FD_PROBE_ALIGN - 1); c >= lowest;
         c -= FD_PROBE_ALIGN) {
        const fd_entry_t *e = fd_block_lookup(f, pid, c, &idx);
        if (e && fd_holds(e, c, address, ev->domain, ev->ts)) {
            found = e;
            found_at = c;
            break;
        }
        if (c < FD_PROBE_ALIGN)
            break;
    }
    for (uint32_t k = 0; k < proc->nlarge; k++) {
        uint64_t start = proc->large[k].address;
        const fd_entry_t *e = fd_entry(f, proc->large[k].idx);
        if (found && start <= found_at)
            continue;
        if (fd_holds(e, start, address, ev->domain, ev->ts)) {
            found = e;
            found_at = start;
        }
    }
    if (!found)
        return;
    proc->r.interior_frees += 1;
    fd_finding_t *x = fd_finding(f, proc, FD_INTERIOR_FREE, ev, address, FD_FREE, found);
    if (x)
        x->block_address = found_at;
}

FD_HOT void fd_end(fold_t *f, const fd_ev_t *ev, uint8_t end_kind, uint64_t address)
{
    fd_proc_t *proc = ev->proc;
    fd_proc_row_t *r = &proc->r;
    uint32_t pid = r->pid, eidx;
    fd_entry_t *e = fd_block_lookup(f, pid, address, &eidx);
    if (e && e->state == FD_LIVE) {
        fd_site_t *site;
        fd_thread_t *t;
        double w = fd_leave(f, proc, e, ev, &site, &t);
        int64_t size = (int64_t)e->size;
        r->frees += 1;
        r->bytes_freed += size;
        site->frees += 1;
        site->bytes_freed += size;
        t->frees += 1;
        __int128 lifetime = (__int128)ev->ts - (__int128)e->ts_ns;
        if (lifetime <= (__int128)f->p.temporary_ns) {
            r->temporary_count += 1;
            r->temporary_bytes += size;
            site->temporary_count += 1;
            site->temporary_bytes += size;
        }
        int bucket = lifetime > 0 ? 64 - __builtin_clzll((uint64_t)lifetime) : 0;
        proc->life[bucket][0] += 1;
        proc->life[bucket][1] += size;
        fd_bucket_t *bk = &proc->buckets[ev->b];
        bk->frees += 1;
        bk->bytes_freed += size;
        bk = &f->all_buckets[ev->ab];
        bk->frees += 1;
        bk->bytes_freed += size;
        if (FD_UNLIKELY(r->sample_bytes)) {
            r->w_frees += w;
            r->w_bytes_freed += (double)e->size * w;
        }
        if (ev->domain != e->domain) {
            r->domain_mismatches += 1;
            fd_finding(f, proc, FD_DOMAIN_MISMATCH, ev, address, end_kind, e);
        }
        if (f->p.oversized_bytes <= 0 || e->size >= (uint64_t)f->p.oversized_bytes) {
            for (size_t i = 0; i < f->oversized.n; i++) {
                fd_oversized_t *o = FD_VEC_AT(&f->oversized, fd_oversized_t, i);
                if (o->pid == pid && o->address == address && o->ts_ns == e->ts_ns &&
                    o->free_ts_ns < 0) {
                    o->free_ts_ns = ev->ts;
                    break;
                }
            }
        }
        e->state = FD_DEAD_REPEATABLE;
    } else if (e && e->state == FD_DEAD_REPEATABLE) {
        r->unmatched_frees += 1;
        r->repeated_ends += 1;
        fd_finding_t *x = fd_finding(f, proc, FD_REPEATED_END, ev, address, end_kind, e);
        if (x) {
            x->prev_end_ts_ns = e->end_ts_ns;
            x->prev_end_tid = e->end_tid;
            x->prev_end_stack_id = e->end_stack_id;
            x->prev_end_kind = e->end_kind;
        }
        e->state = FD_DEAD;
    } else {
        r->unmatched_frees += 1;
        if (end_kind == FD_FREE)
            fd_interior(f, ev, address);
        e = NULL;
    }
    if (e) {
        e->end_ts_ns = ev->ts;
        e->end_kind = end_kind;
        e->end_domain = ev->domain;
        e->end_tid = ev->tid;
        e->end_stack_id = ev->stack;
    }
    if (end_kind == FD_FREE && f->watch_ix.n && fd_index_find(&f->watch_ix, pid, address)) {
        fd_mark_t *d = fd_vec_push(&f->deaths);
        d->pid = pid;
        d->address = address;
        d->ts_ns = ev->ts;
    }
}

/* Prefetching. The tables are much larger than the caches and events touch them at random,
 * so the loop would mostly wait for memory: FD_AHEAD events ahead it hashes the keys
 * (address, old address, (pid, stack), (pid, size)) and prefetches their slots; FD_AHEAD / 2
 * events ahead it reads those slots (now cached) and prefetches the entries they point to.
 * Only the hashes are kept in between (a table may grow meanwhile: the slot is taken from
 * the hash with the current mask). These helpers must be inlined: a function that only
 * loads and prefetches looks pure to GCC, which then drops the calls. */
#define FD_AHEAD 16

typedef struct {
    uint64_t block, old, site, size;
} fd_ahead_t;

FD_HOT void fd_prefetch_slot(const fd_index_t *ix, uint64_t h)
{
    __builtin_prefetch(&ix->slots[h >> ix->shift]);
}

FD_HOT const fd_slot_t *fd_home(const fd_index_t *ix, uint64_t h, uint32_t pid, uint64_t key)
{
    const fd_slot_t *s = &ix->slots[h >> ix->shift];
    return (s->idx && s->key == key && s->pid == pid) ? s : NULL;
}

FD_HOT void fd_ahead_hash(const fold_t *f, const fd_columns_t *c, size_t j, fd_ahead_t *a)
{
    uint64_t pm = fd_pidmix(c->pid[j]);
    a->block = fd_hashm(pm, c->address[j]);
    a->site = fd_hashm(pm, fd_site_key(c->stack_id[j], c->domain[j]));
    fd_prefetch_slot(&f->block_ix, a->block);
    fd_prefetch_slot(&f->site_ix, a->site);
    if (FD_UNLIKELY(c->kind[j] == FD_REALLOC)) {
        a->old = fd_hashm(pm, c->old_address[j]);
        fd_prefetch_slot(&f->block_ix, a->old);
    }
    if (FD_UNLIKELY(c->size[j] >= FD_SMALL)) {
        a->size = fd_hashm(pm, c->size[j]);
        fd_prefetch_slot(&f->size_ix, a->size);
    }
}

FD_HOT void fd_prefetch_entry(const fold_t *f, const fd_slot_t *s)
{
    if (s) {
        const char *e = (const char *)fd_entry(f, s->idx - 1);
        __builtin_prefetch(e, 1);
    }
}

FD_HOT void fd_ahead_entries(const fold_t *f, const fd_columns_t *c, size_t j, const fd_ahead_t *a)
{
    uint32_t pid = c->pid[j];
    fd_prefetch_entry(f, fd_home(&f->block_ix, a->block, pid, c->address[j]));
    if (c->kind[j] == FD_REALLOC)
        fd_prefetch_entry(f, fd_home(&f->block_ix, a->old, pid, c->old_address[j]));
    const fd_slot_t *s =
        fd_home(&f->site_ix, a->site, pid, fd_site_key(c->stack_id[j], c->domain[j]));
    if (s) {
        const char *site = (const char *)&f->sites[s->idx - 1];
        __builtin_prefetch(site, 1);
        __builtin_prefetch(site + 64, 1);
    }
    s = c->size[j] >= FD_SMALL ? fd_home(&f->size_ix, a->size, pid, c->size[j]) : NULL;
    if (s)
        __builtin_prefetch((const fd_size_t *)f->sizes.data + (s->idx - 1), 1);
}

size_t fd_feed(fold_t *f, const fd_columns_t *c, size_t n)
{
    fd_ahead_t ring[FD_AHEAD];
    size_t room_until = 0;
    for (size_t j = 0; j < n && j < FD_AHEAD; j++)
        fd_ahead_hash(f, c, j, &ring[j]);
    for (size_t i = 0; i < n; i++) {
        if (i + FD_AHEAD / 2 < n)
            fd_ahead_entries(f, c, i + FD_AHEAD / 2, &ring[(i + FD_AHEAD / 2) % FD_AHEAD]);
        if (i + FD_AHEAD < n)
            fd_ahead_hash(f, c, i + FD_AHEAD, &ring[i % FD_AHEAD]);
        uint64_t address = c->address[i], old = c->old_address[i];
        uint8_t kind = c->kind[i];
        if (address == 0 && !(kind == FD_REALLOC && old != 0))
            continue;
        uint32_t pid = c->pid[i];
        int64_t ts = c->ts[i];
        if (FD_UNLIKELY(i >= room_until)) {
            /* room for a batch of events at once; one at a time when memory is short */
            size_t batch = n - i < 256 ? n - i : 256;
            if (fd_room(f, NULL, batch)) {
                if (fd_room(f, NULL, 1))
                    return i;
                batch = 1;
            }
            room_until = i + batch;
        }
        fd_proc_t *proc = f->c_proc[pid % FD_CACHE];
        if (FD_UNLIKELY(!proc || proc->r.pid != pid)) {
            proc = fd_proc_find(f, pid);
            if (!proc) {
                int made_all = !f->has_all;
                if (made_all && fd_all_init(f, ts))
                    return i;
                proc = fd_proc_new(f, pid, ts);
                if (!proc) {
                    if (made_all) {
                        free(f->all_buckets);
                        f->all_buckets = NULL;
                        f->has_all = 0;
                    }
                    return i;
                }
            }
            f->c_proc[pid % FD_CACHE] = proc;
        }
        if (FD_UNLIKELY(proc->nlarge + 2 > proc->large_cap) && fd_room(f, proc, 1))
            return i;
        fd_proc_row_t *r = &proc->r;
        if (ts < r->first_ts_ns)
            r->first_ts_ns = ts;
        if (ts > r->last_ts_ns)
            r->last_ts_ns = ts;
        r->events += 1;
        fd_ev_t ev;
        ev.proc = proc;
        ev.tid = c->tid[i];
        ev.seq = c->seq[i];
        ev.ts = ts;
        ev.domain = c->domain[i];
        ev.stack = c->stack_id[i];
        ev.b = fd_proc_bucket(f, proc, ts);
        ev.slot = ev.b >> f->slot_shift;
        ev.ab = fd_all_bucket(f, ts);
        ev.tslot = ev.ab >> f->tm_shift;
        switch (kind) {
        case FD_FREE:
            fd_end(f, &ev, FD_FREE, address);
            break;
        case FD_REALLOC:
            if (old != 0)
                fd_end(f, &ev, FD_REALLOC, old);
            if (address != 0)
                fd_start(f, &ev, kind, address, c->size[i]);
            break;
        case FD_ALLOC:
        case FD_CALLOC:
            fd_start(f, &ev, kind, address, c->size[i]);
            break;
        default:
            break;
        }
        fd_close(&proc->buckets[ev.b], r->live_bytes);
        fd_close(&f->all_buckets[ev.ab], f->all_live);
    }
    return n;
}
