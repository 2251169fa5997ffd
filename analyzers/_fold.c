/* memscope.analyzers._fold: the Fold type, the C twin of analyzers/fold.py's PyFold.
 *
 * The fold itself is in _fold_core.c (its concurrency model: _fold.h). This file checks
 * arguments, releases the GIL around the fold loop, and turns the state into numpy columns
 * (export) and back (restore). numpy is used through Python calls and the buffer protocol
 * only, so the build needs no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "_fold.h"

/* numpy.empty, numpy.ascontiguousarray and fold.FoldParams (set at import / first use). */
static PyObject *np_empty, *np_contiguous, *fold_params_type;

typedef struct {
    PyObject_HEAD fold_t f;
    PyObject *params; /* the FoldParams instance */
    int ready;
    int busy; /* feed is folding without the GIL */
} FoldObject;

/* ---- column layouts (names as in analyzers/fold.py) ------------------------------------- */

/* type: 'B' u1, 'I' <u4, 'Q' <u8, 'q' <i8, 'd' <f8 */
typedef struct {
    const char *name;
    char type;
    size_t off;
} fd_col_t;

#define COL(T, field, type) {#field, type, offsetof(T, field)}
#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

static const fd_col_t PROC_COLS[] = {
    COL(fd_proc_row_t, pid, 'I'),
    COL(fd_proc_row_t, sample_bytes, 'q'),
    COL(fd_proc_row_t, origin_ts_ns, 'q'),
    COL(fd_proc_row_t, width_ns, 'q'),
    COL(fd_proc_row_t, first_ts_ns, 'q'),
    COL(fd_proc_row_t, last_ts_ns, 'q'),
    COL(fd_proc_row_t, first_alloc_ts_ns, 'q'),
    COL(fd_proc_row_t, last_alloc_ts_ns, 'q'),
    COL(fd_proc_row_t, events, 'q'),
    COL(fd_proc_row_t, allocations, 'q'),
    COL(fd_proc_row_t, bytes_allocated, 'q'),
    COL(fd_proc_row_t, frees, 'q'),
    COL(fd_proc_row_t, bytes_freed, 'q'),
    COL(fd_proc_row_t, live_blocks, 'q'),
    COL(fd_proc_row_t, live_bytes, 'q'),
    COL(fd_proc_row_t, reused, 'q'),
    COL(fd_proc_row_t, reused_bytes, 'q'),
    COL(fd_proc_row_t, unmatched_frees, 'q'),
    COL(fd_proc_row_t, repeated_ends, 'q'),
    COL(fd_proc_row_t, domain_mismatches, 'q'),
    COL(fd_proc_row_t, interior_frees, 'q'),
    COL(fd_proc_row_t, interior_checked, 'q'),
    COL(fd_proc_row_t, interior_unchecked, 'q'),
    COL(fd_proc_row_t, oversized, 'q'),
    COL(fd_proc_row_t, temporary_count, 'q'),
    COL(fd_proc_row_t, temporary_bytes, 'q'),
    COL(fd_proc_row_t, peak_bytes, 'q'),
    COL(fd_proc_row_t, peak_ts_ns, 'q'),
    COL(fd_proc_row_t, w_allocations, 'd'),
    COL(fd_proc_row_t, w_bytes_allocated, 'd'),
    COL(fd_proc_row_t, w_frees, 'd'),
    COL(fd_proc_row_t, w_bytes_freed, 'd'),
    COL(fd_proc_row_t, w_live_blocks, 'd'),
    COL(fd_proc_row_t, w_live_bytes, 'd'),
    COL(fd_proc_row_t, w_live_rounded, 'q'),
    COL(fd_proc_row_t, w_peak_bytes, 'q'),
    COL(fd_proc_row_t, w_peak_ts_ns, 'q'),
};

typedef struct {
    int64_t origin_ts_ns, width_ns, live_bytes, peak_bytes, peak_ts_ns, w_live_rounded,
        w_peak_bytes, w_peak_ts_ns;
} fd_all_row_t;

static const fd_col_t ALL_COLS[] = {
    COL(fd_all_row_t, origin_ts_ns, 'q'), COL(fd_all_row_t, width_ns, 'q'),
    COL(fd_all_row_t, live_bytes, 'q'),   COL(fd_all_row_t, peak_bytes, 'q'),
    COL(fd_all_row_t, peak_ts_ns, 'q'),   COL(fd_all_row_t, w_live_rounded, 'q'),
    COL(fd_all_row_t, w_peak_bytes, 'q'), COL(fd_all_row_t, w_peak_ts_ns, 'q'),
};

/* A row of `sites`. */
typedef struct {
    fd_site_t s;
    int64_t reused;
    uint8_t domain;
} fd_site_row_t;

#define SCOL(field) {#field, 'q', offsetof(fd_site_row_t, s) + offsetof(fd_site_t, field)}
static const fd_col_t SITE_COLS[] = {
    {"pid", 'I', offsetof(fd_site_row_t, s) + offsetof(fd_site_t, pid)},
    {"stack_id", 'I', offsetof(fd_site_row_t, s) + offsetof(fd_site_t, stack_id)},
    COL(fd_site_row_t, domain, 'B'),
    SCOL(allocations),
    SCOL(bytes_allocated),
    SCOL(frees),
    SCOL(bytes_freed),
    SCOL(live_blocks),
    SCOL(live_bytes),
    COL(fd_site_row_t, reused, 'q'),
    SCOL(temporary_count),
    SCOL(temporary_bytes),
    SCOL(peak_blocks),
    SCOL(peak_bytes),
    SCOL(all_peak_blocks),
    SCOL(all_peak_bytes),
    SCOL(last_slot),
};

static const fd_col_t THREAD_COLS[] = {
    COL(fd_thread_t, pid, 'I'),         COL(fd_thread_t, tid, 'Q'),
    COL(fd_thread_t, allocations, 'q'), COL(fd_thread_t, bytes_allocated, 'q'),
    COL(fd_thread_t, frees, 'q'),       COL(fd_thread_t, live_blocks, 'q'),
    COL(fd_thread_t, live_bytes, 'q'),
};

static const fd_col_t SIZE_COLS[] = {
    COL(fd_size_t, pid, 'I'),
    COL(fd_size_t, size, 'Q'),
    COL(fd_size_t, count, 'q'),
};

typedef struct {
    uint32_t pid;
    int64_t bucket;
    fd_bucket_t b;
} fd_tl_row_t;

#define BCOL(field) {#field, 'q', offsetof(fd_tl_row_t, b) + offsetof(fd_bucket_t, field)}
static const fd_col_t TIMELINE_COLS[] = {
    COL(fd_tl_row_t, pid, 'I'),
    COL(fd_tl_row_t, bucket, 'q'),
    BCOL(events),
    BCOL(allocations),
    BCOL(frees),
    BCOL(bytes_allocated),
    BCOL(bytes_freed),
    BCOL(live_bytes),
    BCOL(max_live_bytes),
};
#define TIMELINE_ALL_COLS (TIMELINE_COLS + 1) /* the same without pid */
#define NTIMELINE_ALL_COLS (NCOLS(TIMELINE_COLS) - 1)

typedef struct {
    uint32_t pid;
    int64_t bucket, count, bytes;
} fd_life_row_t;

static const fd_col_t LIFE_COLS[] = {
    COL(fd_life_row_t, pid, 'I'),
    COL(fd_life_row_t, bucket, 'q'),
    COL(fd_life_row_t, count, 'q'),
    COL(fd_life_row_t, bytes, 'q'),
};

/* A row of `blocks` (an entry with its key). */
typedef struct {
    uint32_t pid;
    uint64_t address;
    uint8_t state, kind, domain;
    uint64_t tid, seq;
    int64_t ts_ns;
    uint64_t size;
    uint32_t stack_id;
    int64_t end_ts_ns;
    uint8_t end_kind, end_domain;
    uint64_t end_tid;
    uint32_t end_stack_id;
} fd_block_row_t;

static const fd_col_t BLOCK_COLS[] = {
    COL(fd_block_row_t, pid, 'I'),          COL(fd_block_row_t, address, 'Q'),
    COL(fd_block_row_t, state, 'B'),        COL(fd_block_row_t, kind, 'B'),
    COL(fd_block_row_t, domain, 'B'),       COL(fd_block_row_t, tid, 'Q'),
    COL(fd_block_row_t, seq, 'Q'),          COL(fd_block_row_t, ts_ns, 'q'),
    COL(fd_block_row_t, size, 'Q'),         COL(fd_block_row_t, stack_id, 'I'),
    COL(fd_block_row_t, end_ts_ns, 'q'),    COL(fd_block_row_t, end_kind, 'B'),
    COL(fd_block_row_t, end_domain, 'B'),   COL(fd_block_row_t, end_tid, 'Q'),
    COL(fd_block_row_t, end_stack_id, 'I'),
};

static const fd_col_t FINDING_COLS[] = {
    COL(fd_finding_t, type, 'B'),
    COL(fd_finding_t, pid, 'I'),
    COL(fd_finding_t, tid, 'Q'),
    COL(fd_finding_t, seq, 'Q'),
    COL(fd_finding_t, ts_ns, 'q'),
    COL(fd_finding_t, address, 'Q'),
    COL(fd_finding_t, kind, 'B'),
    COL(fd_finding_t, domain, 'B'),
    COL(fd_finding_t, stack_id, 'I'),
    COL(fd_finding_t, alloc_ts_ns, 'q'),
    COL(fd_finding_t, alloc_domain, 'B'),
    COL(fd_finding_t, alloc_tid, 'Q'),
    COL(fd_finding_t, alloc_stack_id, 'I'),
    COL(fd_finding_t, size, 'Q'),
    COL(fd_finding_t, block_address, 'Q'),
    COL(fd_finding_t, prev_end_ts_ns, 'q'),
    COL(fd_finding_t, prev_end_tid, 'Q'),
    COL(fd_finding_t, prev_end_stack_id, 'I'),
    COL(fd_finding_t, prev_end_kind, 'B'),
};

static const fd_col_t OVERSIZED_COLS[] = {
    COL(fd_oversized_t, pid, 'I'),      COL(fd_oversized_t, tid, 'Q'),
    COL(fd_oversized_t, ts_ns, 'q'),    COL(fd_oversized_t, address, 'Q'),
    COL(fd_oversized_t, size, 'Q'),     COL(fd_oversized_t, domain, 'B'),
    COL(fd_oversized_t, stack_id, 'I'), COL(fd_oversized_t, free_ts_ns, 'q'),
};

static const fd_col_t MARK_COLS[] = {
    COL(fd_mark_t, pid, 'I'),
    COL(fd_mark_t, address, 'Q'),
    COL(fd_mark_t, ts_ns, 'q'),
};

/* A row of `temporal`. */
typedef struct {
    uint32_t pid, stack_id;
    uint8_t domain;
    int64_t a, e, bytes, count;
} fd_tm_row_t;

static const fd_col_t TEMPORAL_COLS[] = {
    COL(fd_tm_row_t, pid, 'I'),   COL(fd_tm_row_t, stack_id, 'I'), COL(fd_tm_row_t, domain, 'B'),
    COL(fd_tm_row_t, a, 'q'),     COL(fd_tm_row_t, e, 'q'),        COL(fd_tm_row_t, bytes, 'q'),
    COL(fd_tm_row_t, count, 'q'),
};

static const char *fd_dtype(char type)
{
    switch (type) {
    case 'B':
        return "u1";
    case 'I':
        return "<u4";
    case 'Q':
        return "<u8";
    case 'd':
        return "<f8";
    default:
        return "<i8";
    }
}

static size_t fd_type_size(char type)
{
    return type == 'B' ? 1 : type == 'I' ? 4 : 8;
}

/* ---- export ----------------------------------------------------------------------------- */

/* {column: numpy array} from n rows (pointers to row structs). */
static PyObject *fd_table(const fd_col_t *cols, size_t ncols, char *const *rows, size_t n)
{
    PyObject *table = PyDict_New();
    if (!table)
        return NULL;
    for (size_t c = 0; c < ncols; c++) {
        PyObject *arr =
            PyObject_CallFunction(np_empty, "ns", (Py_ssize_t)n, fd_dtype(cols[c].type));
        if (!arr)
            goto fail;
        Py_buffer view;
        if (PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
            Py_DECREF(arr);
            goto fail;
        }
        size_t size = fd_type_size(cols[c].type), off = cols[c].off;
        char *dst = view.buf;
        for (size_t i = 0; i < n; i++)
            memcpy(dst + i * size, rows[i] + off, size);
        PyBuffer_Release(&view);
        int bad = PyDict_SetItemString(table, cols[c].name, arr);
        Py_DECREF(arr);
        if (bad)
            goto fail;
    }
    return table;
fail:
    Py_DECREF(table);
    return NULL;
}

/* Rows of a contiguous array as pointers. */
static char **fd_pointers(void *base, size_t n, size_t item)
{
    char **rows = malloc((n ? n : 1) * sizeof(char *));
    if (rows)
        for (size_t i = 0; i < n; i++)
            rows[i] = (char *)base + i * item;
    return rows;
}

typedef struct {
    uint32_t pid;
    uint64_t key;
    char *row;
} fd_sortkey_t;

static int fd_sortkey_cmp(const void *a, const void *b)
{
    const fd_sortkey_t *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;
}

/* rows sorted by (pid, key) in place: keys[i].row. */
static char **fd_sorted(fd_sortkey_t *keys, size_t n)
{
    qsort(keys, n, sizeof(*keys), fd_sortkey_cmp);
    char **rows = (char **)keys; /* reuse: a pointer is not larger than a key */
    for (size_t i = 0; i < n; i++)
        rows[i] = keys[i].row;
    return rows;
}

static int fd_put(PyObject *out, const char *name, PyObject *table)
{
    if (!table)
        return -1;
    int bad = PyDict_SetItemString(out, name, table);
    Py_DECREF(table);
    return bad;
}

/* One table from a temporary array of row structs (freed here). */
static int fd_put_rows(PyObject *out, const char *name, const fd_col_t *cols, size_t ncols,
                       void *rows, size_t n, size_t item)
{
    char **ptrs = fd_pointers(rows, n, item);
    if (!ptrs) {
        free(rows);
        PyErr_NoMemory();
        return -1;
    }
    int bad = fd_put(out, name, fd_table(cols, ncols, ptrs, n));
    free(ptrs);
    free(rows);
    return bad;
}

static int fd_export_sites(const fold_t *f, PyObject *out)
{
    size_t n = f->nsites, slots = (size_t)f->p.site_slots;
    fd_sortkey_t *keys = malloc((n ? n : 1) * sizeof(*keys));
    fd_site_row_t *rows = malloc((n ? n : 1) * sizeof(*rows));
    if (!keys || !rows) {
        free(keys);
        free(rows);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        fd_site_t *s = &rows[i].s;
        *s = f->sites[i];
        rows[i].reused = f->site_reused[i];
        rows[i].domain = f->site_domain[i];
        const fd_proc_t *proc = f->procs[fd_index_find(&f->proc_ix, s->pid, 0) - 1];
        if (s->pv != proc->peak_version) {
            s->peak_blocks = s->live_blocks;
            s->peak_bytes = s->live_bytes;
        }
        if (s->av != f->all_version) {
            s->all_peak_blocks = s->live_blocks;
            s->all_peak_bytes = s->live_bytes;
        }
        s->pv = i; /* remember the series' index across the sort */
        keys[i] =
            (fd_sortkey_t){s->pid, ((uint64_t)s->stack_id << 8) | rows[i].domain, (char *)&rows[i]};
    }
    char **sorted = fd_sorted(keys, n);
    PyObject *table = fd_table(SITE_COLS, NCOLS(SITE_COLS), sorted, n);
    PyObject *series = NULL;
    if (table)
        series = PyObject_CallFunction(np_empty, "(nn)s", (Py_ssize_t)n, (Py_ssize_t)slots, "<i8");
    Py_buffer view;
    if (series && PyObject_GetBuffer(series, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) == 0) {
        int64_t *dst = view.buf;
        for (size_t i = 0; i < n; i++) {
            const fd_site_t *s = &((const fd_site_row_t *)sorted[i])->s;
            for (size_t j = 0; j < slots; j++)
                dst[i * slots + j] =
                    (int64_t)j <= s->last_slot ? *fd_sv(f, (uint32_t)s->pv, j) : s->live_bytes;
        }
        PyBuffer_Release(&view);
    } else {
        Py_CLEAR(series);
    }
    free(keys);
    free(rows);
    if (!series || PyDict_SetItemString(table, "series", series)) {
        Py_XDECREF(series);
        Py_XDECREF(table);
        return -1;
    }
    Py_DECREF(series);
    return fd_put(out, "sites", table);
}

/* A table of keyed rows (pid, key) sorted by key: rows at base + i * item. */
static int fd_put_keyed(PyObject *out, const char *name, const fd_col_t *cols, size_t ncols,
                        char *const *rows, size_t n, size_t pid_off, size_t key_off)
{
    fd_sortkey_t *keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!keys) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t pid;
        uint64_t key = 0;
        memcpy(&pid, rows[i] + pid_off, 4);
        if (key_off != (size_t)-1)
            memcpy(&key, rows[i] + key_off, 8);
        keys[i] = (fd_sortkey_t){pid, key, rows[i]};
    }
    int bad = fd_put(out, name, fd_table(cols, ncols, fd_sorted(keys, n), n));
    free(keys);
    return bad;
}

static int fd_procs_sorted(const fold_t *f, fd_proc_t ***procs)
{
    *procs = malloc((f->nprocs ? f->nprocs : 1) * sizeof(fd_proc_t *));
    if (!*procs) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(*procs, f->procs, f->nprocs * sizeof(fd_proc_t *));
    /* few processes: insertion sort by pid */
    for (uint32_t i = 1; i < f->nprocs; i++)
        for (uint32_t j = i; j > 0 && (*procs)[j - 1]->r.pid > (*procs)[j]->r.pid; j--) {
            fd_proc_t *t = (*procs)[j];
            (*procs)[j] = (*procs)[j - 1];
            (*procs)[j - 1] = t;
        }
    return 0;
}

static int fd_export_timelines(const fold_t *f, fd_proc_t **procs, PyObject *out)
{
    size_t n = 0, nb = (size_t)f->p.timeline_buckets;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (size_t b = 0; b < nb; b++)
            n += procs[p]->buckets[b].events != 0;
    fd_tl_row_t *rows = malloc((n ? n : 1) * sizeof(*rows));
    if (!rows) {
        PyErr_NoMemory();
        return -1;
    }
    size_t k = 0;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (size_t b = 0; b < nb; b++)
            if (procs[p]->buckets[b].events)
                rows[k++] = (fd_tl_row_t){procs[p]->r.pid, (int64_t)b, procs[p]->buckets[b]};
    if (fd_put_rows(out, "timeline", TIMELINE_COLS, NCOLS(TIMELINE_COLS), rows, n, sizeof(*rows)))
        return -1;
    n = 0;
    for (size_t b = 0; f->has_all && b < nb; b++)
        n += f->all_buckets[b].events != 0;
    rows = malloc((n ? n : 1) * sizeof(*rows));
    if (!rows) {
        PyErr_NoMemory();
        return -1;
    }
    k = 0;
    for (size_t b = 0; f->has_all && b < nb; b++)
        if (f->all_buckets[b].events)
            rows[k++] = (fd_tl_row_t){0, (int64_t)b, f->all_buckets[b]};
    if (fd_put_rows(out, "timeline_all", TIMELINE_ALL_COLS, NTIMELINE_ALL_COLS, rows, n,
                    sizeof(*rows)))
        return -1;
    n = 0;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (int b = 0; b < FD_LIFETIME_BUCKETS; b++)
            n += procs[p]->life[b][0] != 0;
    fd_life_row_t *life = malloc((n ? n : 1) * sizeof(*life));
    if (!life) {
        PyErr_NoMemory();
        return -1;
    }
    k = 0;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (int b = 0; b < FD_LIFETIME_BUCKETS; b++)
            if (procs[p]->life[b][0])
                life[k++] =
                    (fd_life_row_t){procs[p]->r.pid, b, procs[p]->life[b][0], procs[p]->life[b][1]};
    return fd_put_rows(out, "lifetimes", LIFE_COLS, NCOLS(LIFE_COLS), life, n, sizeof(*life));
}

static int fd_export_blocks(const fold_t *f, PyObject *out)
{
    size_t n = f->nblocks;
    fd_block_row_t *rows = malloc((n ? n : 1) * sizeof(*rows));
    char **ptrs = fd_pointers(rows, n, sizeof(*rows));
    if (!rows || !ptrs) {
        free(rows);
        free(ptrs);
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i <= f->block_ix.mask; i++) {
        const fd_slot_t *s = &f->block_ix.slots[i];
        if (!s->idx)
            continue;
        const fd_entry_t *e = fd_entry(f, s->idx - 1);
        rows[s->idx - 1] =
            (fd_block_row_t){s->pid,       s->key,      e->state,      e->kind,    e->domain,
                             e->tid,       e->seq,      e->ts_ns,      e->size,    e->stack_id,
                             e->end_ts_ns, e->end_kind, e->end_domain, e->end_tid, e->end_stack_id};
    }
    int bad = fd_put_keyed(out, "blocks", BLOCK_COLS, NCOLS(BLOCK_COLS), ptrs, n,
                           offsetof(fd_block_row_t, pid), offsetof(fd_block_row_t, address));
    free(ptrs);
    free(rows);
    return bad;
}

/* sizes: the per-process arrays of small sizes and the table of the others */
static int fd_export_sizes(const fold_t *f, PyObject *out)
{
    size_t n = f->sizes.n;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (size_t z = 0; z < FD_SMALL; z++)
            n += f->procs[p]->small[z] != 0;
    fd_size_t *rows = malloc((n ? n : 1) * sizeof(*rows));
    char **ptrs = fd_pointers(rows, n, sizeof(*rows));
    if (!rows || !ptrs) {
        free(rows);
        free(ptrs);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(rows, f->sizes.data, f->sizes.n * sizeof(*rows));
    size_t k = f->sizes.n;
    for (uint32_t p = 0; p < f->nprocs; p++)
        for (size_t z = 0; z < FD_SMALL; z++)
            if (f->procs[p]->small[z])
                rows[k++] = (fd_size_t){f->procs[p]->r.pid, z, f->procs[p]->small[z]};
    int bad = fd_put_keyed(out, "sizes", SIZE_COLS, NCOLS(SIZE_COLS), ptrs, n,
                           offsetof(fd_size_t, pid), offsetof(fd_size_t, size));
    free(ptrs);
    free(rows);
    return bad;
}

/* temporal: the cells with their sites' keys, sorted by (pid, stack, domain, a, e) */
static int fd_export_temporal(const fold_t *f, PyObject *out)
{
    size_t n = f->tcells.n;
    fd_tm_row_t *rows = malloc((n ? n : 1) * sizeof(*rows));
    fd_sortkey_t *keys = malloc((n ? n : 1) * sizeof(*keys));
    if (!rows || !keys) {
        free(rows);
        free(keys);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const fd_tcell_t *c = (const fd_tcell_t *)f->tcells.data + i;
        const fd_site_t *site = &f->sites[c->site];
        uint8_t domain = f->site_domain[c->site];
        rows[i] = (fd_tm_row_t){site->pid, site->stack_id, domain, c->a, c->e, c->bytes, c->count};
        keys[i] = (fd_sortkey_t){site->pid,
                                 ((uint64_t)site->stack_id << 32) | ((uint64_t)domain << 16) |
                                     fd_tm_key(c->a, c->e),
                                 (char *)&rows[i]};
    }
    int bad = fd_put(out, "temporal",
                     fd_table(TEMPORAL_COLS, NCOLS(TEMPORAL_COLS), fd_sorted(keys, n), n));
    free(keys);
    free(rows);
    return bad;
}

/* The tables into `out` by `level`: 0 every one; 1 only `processes` and `all` (cheap: the
 * others cost the state's size); 2 those and `sites` (one row per site, never per block). */
static int fd_export_into(const fold_t *f, PyObject *out, int level)
{
    fd_proc_t **procs;
    if (fd_procs_sorted(f, &procs))
        return -1;
    int bad = -1;
    char **rows = malloc((f->nprocs ? f->nprocs : 1) * sizeof(char *));
    if (!rows) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t i = 0; i < f->nprocs; i++)
        rows[i] = (char *)&procs[i]->r;
    bad = fd_put(out, "processes", fd_table(PROC_COLS, NCOLS(PROC_COLS), rows, f->nprocs));
    free(rows);
    if (bad)
        goto done;
    fd_all_row_t all = {f->has_all ? f->all_origin : -1,
                        !f->has_all         ? f->p.initial_width_ns
                        : f->all_shift < 64 ? (int64_t)((uint64_t)1 << f->all_shift)
                                            : 0,
                        f->all_live,
                        f->all_peak,
                        f->all_peak_ts,
                        f->all_w_live,
                        f->all_w_peak,
                        f->all_w_peak_ts};
    char *all_row = (char *)&all;
    bad = fd_put(out, "all", fd_table(ALL_COLS, NCOLS(ALL_COLS), &all_row, 1));
    if (bad || level == 1 || (bad = fd_export_sites(f, out)) || level == 2)
        goto done;
    bad = -1;
    char **ptrs;
    if (!(ptrs = fd_pointers(f->threads.data, f->threads.n, f->threads.item)))
        goto nomem;
    bad = fd_put_keyed(out, "threads", THREAD_COLS, NCOLS(THREAD_COLS), ptrs, f->threads.n,
                       offsetof(fd_thread_t, pid), offsetof(fd_thread_t, tid));
    free(ptrs);
    if (bad)
        goto done;
    if ((bad = fd_export_sizes(f, out)) || (bad = fd_export_timelines(f, procs, out)))
        goto done;
    if ((bad = fd_export_blocks(f, out)))
        goto done;
    const struct {
        const char *name;
        const fd_col_t *cols;
        size_t ncols;
        const fd_vec_t *v;
    } lists[] = {
        {"findings", FINDING_COLS, NCOLS(FINDING_COLS), &f->findings},
        {"oversized", OVERSIZED_COLS, NCOLS(OVERSIZED_COLS), &f->oversized},
        {"deaths", MARK_COLS, NCOLS(MARK_COLS), &f->deaths},
    };
    for (size_t i = 0; i < NCOLS(lists); i++) {
        bad = -1;
        if (!(ptrs = fd_pointers(lists[i].v->data, lists[i].v->n, lists[i].v->item)))
            goto nomem;
        bad = fd_put(out, lists[i].name,
                     fd_table(lists[i].cols, lists[i].ncols, ptrs, lists[i].v->n));
        free(ptrs);
        if (bad)
            goto done;
    }
    bad = -1;
    if (!(ptrs = fd_pointers(f->watched.data, f->watched.n, f->watched.item)))
        goto nomem;
    bad = fd_put_keyed(out, "watched", MARK_COLS, NCOLS(MARK_COLS), ptrs, f->watched.n,
                       offsetof(fd_mark_t, pid), offsetof(fd_mark_t, address));
    free(ptrs);
    if (!bad)
        bad = fd_export_temporal(f, out);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    free(procs);
    return bad;
}

/* ---- restore ---------------------------------------------------------------------------- */

/* The rows of tables[name] as a calloc'ed array of row structs (NULL with an exception set,
 * or with *n = 0 and no exception when the table is empty). */
static char *fd_read(PyObject *tables, const char *name, const fd_col_t *cols, size_t ncols,
                     size_t item, Py_ssize_t *n)
{
    *n = -1;
    char *rows = NULL;
    PyObject *table = PyMapping_GetItemString(tables, name);
    if (!table)
        return NULL;
    for (size_t c = 0; c < ncols; c++) {
        PyObject *column = PyMapping_GetItemString(table, cols[c].name);
        if (!column)
            goto fail;
        PyObject *arr = PyObject_CallFunction(np_contiguous, "Os", column, fd_dtype(cols[c].type));
        Py_DECREF(column);
        if (!arr)
            goto fail;
        Py_buffer view;
        int bad = PyObject_GetBuffer(arr, &view, PyBUF_C_CONTIGUOUS);
        Py_DECREF(arr);
        if (bad)
            goto fail;
        size_t size = fd_type_size(cols[c].type);
        Py_ssize_t len = view.ndim == 1 ? view.shape[0] : -1;
        if (len < 0 || (*n >= 0 && len != *n)) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_ValueError,
                         "restore: table %s: columns must be 1-D and of "
                         "one length (%s)",
                         name, cols[c].name);
            goto fail;
        }
        if (*n < 0) {
            *n = len;
            rows = calloc(len ? (size_t)len : 1, item);
            if (!rows) {
                PyBuffer_Release(&view);
                PyErr_NoMemory();
                goto fail;
            }
        }
        const char *src = view.buf;
        for (Py_ssize_t i = 0; i < len; i++)
            memcpy(rows + (size_t)i * item + cols[c].off, src + (size_t)i * size, size);
        PyBuffer_Release(&view);
    }
    Py_DECREF(table);
    if (*n < 0) {
        *n = 0;
        rows = calloc(1, item);
    }
    return rows;
fail:
    Py_DECREF(table);
    free(rows);
    *n = 0;
    return NULL;
}

static fd_proc_t *fd_need_proc(fold_t *f, uint32_t pid, const char *table)
{
    fd_proc_t *proc = fd_proc_find(f, pid);
    if (!proc)
        PyErr_Format(PyExc_ValueError,
                     "restore: %s names pid %u, which has no row in "
                     "processes",
                     table, (unsigned)pid);
    return proc;
}

#define FD_ROOM(f, proc)                                                                           \
    do {                                                                                           \
        if (fd_room(f, proc, 1)) {                                                                 \
            PyErr_NoMemory();                                                                      \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int fd_restore_procs(fold_t *f, PyObject *tables)
{
    Py_ssize_t n;
    fd_proc_row_t *rows = (fd_proc_row_t *)fd_read(tables, "processes", PROC_COLS, NCOLS(PROC_COLS),
                                                   sizeof(*rows), &n);
    if (!rows)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int shift = fd_width_shift(rows[i].width_ns);
        if (shift < 0 || fd_proc_find(f, rows[i].pid)) {
            PyErr_Format(PyExc_ValueError,
                         "restore: processes: pid %u repeated or with a "
                         "width_ns not a power of two",
                         (unsigned)rows[i].pid);
            goto fail;
        }
        fd_proc_t *proc = fd_proc_new(f, rows[i].pid, rows[i].origin_ts_ns);
        if (!proc) {
            PyErr_NoMemory();
            goto fail;
        }
        proc->r = rows[i];
        proc->shift = shift;
        if (rows[i].sample_bytes && fd_set_sampling(f, rows[i].pid, rows[i].sample_bytes)) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    free(rows);
    Py_ssize_t nall;
    if (!PyMapping_HasKeyString(tables, "all"))
        return 0;
    fd_all_row_t *all =
        (fd_all_row_t *)fd_read(tables, "all", ALL_COLS, NCOLS(ALL_COLS), sizeof(*all), &nall);
    if (!all)
        return -1;
    if (nall && f->nprocs) {
        int shift = fd_width_shift(all->width_ns);
        if (shift < 0) {
            free(all);
            PyErr_SetString(PyExc_ValueError, "restore: all: width_ns not a power of two");
            return -1;
        }
        if (fd_all_init(f, all->origin_ts_ns)) {
            free(all);
            PyErr_NoMemory();
            return -1;
        }
        f->all_shift = shift;
    }
    if (nall) {
        f->all_live = all->live_bytes;
        f->all_peak = all->peak_bytes;
        f->all_peak_ts = all->peak_ts_ns;
        f->all_w_live = all->w_live_rounded;
        f->all_w_peak = all->w_peak_bytes;
        f->all_w_peak_ts = all->w_peak_ts_ns;
    }
    free(all);
    return 0;
fail:
    free(rows);
    return -1;
}

static int fd_restore_sites(fold_t *f, PyObject *tables)
{
    Py_ssize_t n;
    fd_site_row_t *rows =
        (fd_site_row_t *)fd_read(tables, "sites", SITE_COLS, NCOLS(SITE_COLS), sizeof(*rows), &n);
    if (!rows)
        return -1;
    Py_buffer view = {0};
    PyObject *series = NULL, *table = PyMapping_GetItemString(tables, "sites");
    if (table) {
        PyObject *column = PyMapping_GetItemString(table, "series");
        Py_DECREF(table);
        if (column) {
            series = PyObject_CallFunction(np_contiguous, "Os", column, "<i8");
            Py_DECREF(column);
        }
    }
    if (!series || PyObject_GetBuffer(series, &view, PyBUF_C_CONTIGUOUS | PyBUF_ND) < 0)
        goto fail;
    size_t slots = (size_t)f->p.site_slots;
    if (view.len != (Py_ssize_t)((size_t)n * slots * 8) || (n && view.ndim != 2) ||
        (view.ndim == 2 && (size_t)view.shape[1] != slots)) {
        PyErr_SetString(PyExc_ValueError, "restore: sites.series must be [n, site_slots]");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!fd_need_proc(f, rows[i].s.pid, "sites"))
            goto fail;
        FD_ROOM(f, NULL);
        uint32_t idx;
        fd_site_t *site = fd_site_get(f, rows[i].s.pid, rows[i].s.stack_id, rows[i].domain, &idx);
        uint64_t pv = site->pv, av = site->av;
        *site = rows[i].s;
        site->pv = pv;
        site->av = av;
        f->site_reused[idx] = rows[i].reused;
        for (size_t j = 0; j < slots; j++)
            *fd_sv(f, idx, j) = ((const int64_t *)view.buf)[(size_t)i * slots + j];
    }
    PyBuffer_Release(&view);
    Py_DECREF(series);
    free(rows);
    return 0;
fail:
    if (view.obj)
        PyBuffer_Release(&view);
    Py_XDECREF(series);
    free(rows);
    return -1;
}

static int fd_restore_counts(fold_t *f, PyObject *tables)
{
    Py_ssize_t n;
    fd_thread_t *threads = (fd_thread_t *)fd_read(tables, "threads", THREAD_COLS,
                                                  NCOLS(THREAD_COLS), sizeof(*threads), &n);
    if (!threads)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (fd_room(f, NULL, 1)) {
            free(threads);
            PyErr_NoMemory();
            return -1;
        }
        *fd_thread_get(f, threads[i].pid, threads[i].tid) = threads[i];
    }
    free(threads);
    fd_size_t *sizes =
        (fd_size_t *)fd_read(tables, "sizes", SIZE_COLS, NCOLS(SIZE_COLS), sizeof(*sizes), &n);
    if (!sizes)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        fd_proc_t *proc = NULL;
        if (sizes[i].size < FD_SMALL && !(proc = fd_need_proc(f, sizes[i].pid, "sizes"))) {
            free(sizes);
            return -1;
        }
        if (proc) {
            proc->small[sizes[i].size] = sizes[i].count;
            continue;
        }
        if (fd_room(f, NULL, 1)) {
            free(sizes);
            PyErr_NoMemory();
            return -1;
        }
        fd_size_get(f, sizes[i].pid, sizes[i].size)->count = sizes[i].count;
    }
    free(sizes);
    fd_life_row_t *life = (fd_life_row_t *)fd_read(tables, "lifetimes", LIFE_COLS, NCOLS(LIFE_COLS),
                                                   sizeof(*life), &n);
    if (!life)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        fd_proc_t *proc = fd_need_proc(f, life[i].pid, "lifetimes");
        if (!proc || life[i].bucket < 0 || life[i].bucket >= FD_LIFETIME_BUCKETS) {
            if (proc)
                PyErr_SetString(PyExc_ValueError, "restore: lifetimes: bucket out of range");
            free(life);
            return -1;
        }
        proc->life[life[i].bucket][0] = life[i].count;
        proc->life[life[i].bucket][1] = life[i].bytes;
    }
    free(life);
    return 0;
}

static int fd_restore_timelines(fold_t *f, PyObject *tables)
{
    for (int all = 0; all < 2; all++) {
        Py_ssize_t n;
        fd_tl_row_t *rows = (fd_tl_row_t *)fd_read(
            tables, all ? "timeline_all" : "timeline", all ? TIMELINE_ALL_COLS : TIMELINE_COLS,
            all ? NTIMELINE_ALL_COLS : NCOLS(TIMELINE_COLS), sizeof(*rows), &n);
        if (!rows)
            return -1;
        for (Py_ssize_t i = 0; i < n && (!all || f->has_all); i++) {
            fd_bucket_t *buckets = f->all_buckets;
            if (!all) {
                fd_proc_t *proc = fd_need_proc(f, rows[i].pid, "timeline");
                if (!proc) {
                    free(rows);
                    return -1;
                }
                buckets = proc->buckets;
            }
            if (rows[i].bucket < 0 || rows[i].bucket >= f->p.timeline_buckets) {
                PyErr_SetString(PyExc_ValueError, "restore: timeline: bucket out of range");
                free(rows);
                return -1;
            }
            buckets[rows[i].bucket] = rows[i].b;
        }
        free(rows);
    }
    return 0;
}

static int fd_restore_blocks(fold_t *f, PyObject *tables)
{
    Py_ssize_t n;
    fd_block_row_t *rows = (fd_block_row_t *)fd_read(tables, "blocks", BLOCK_COLS,
                                                     NCOLS(BLOCK_COLS), sizeof(*rows), &n);
    if (!rows)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const fd_block_row_t *r = &rows[i];
        if (r->state < FD_LIVE || r->state > FD_DEAD || r->kind > FD_REALLOC ||
            (r->end_kind != 0 && r->end_kind != FD_REALLOC && r->end_kind != FD_FREE)) {
            PyErr_SetString(PyExc_ValueError, "restore: blocks: state, kind or end_kind out "
                                              "of range");
            goto fail;
        }
        fd_proc_t *proc = fd_proc_find(f, r->pid);
        FD_ROOM(f, proc);
        uint32_t idx;
        fd_entry_t *e = fd_block_get(f, r->pid, r->address, &idx);
        if (e->large)
            fd_large_remove(f, proc, e);
        *e = (fd_entry_t){r->tid,        r->seq,      r->ts_ns,        r->size,    r->end_ts_ns,
                          r->end_tid,    r->stack_id, r->end_stack_id, 0,          r->domain,
                          r->end_domain, r->state,    r->kind,         r->end_kind};
        if (e->state == FD_LIVE && e->size > (uint64_t)f->p.interior_probe_bytes) {
            if (!fd_need_proc(f, r->pid, "blocks"))
                goto fail;
            fd_large_add(proc, e, idx, r->address);
        }
    }
    free(rows);
    return 0;
fail:
    free(rows);
    return -1;
}

static int fd_restore_lists(fold_t *f, PyObject *tables)
{
    const struct {
        const char *name;
        const fd_col_t *cols;
        size_t ncols;
        fd_vec_t *v;
    } lists[] = {
        {"findings", FINDING_COLS, NCOLS(FINDING_COLS), &f->findings},
        {"oversized", OVERSIZED_COLS, NCOLS(OVERSIZED_COLS), &f->oversized},
        {"deaths", MARK_COLS, NCOLS(MARK_COLS), &f->deaths},
    };
    for (size_t l = 0; l < NCOLS(lists); l++) {
        Py_ssize_t n;
        fd_vec_t *v = lists[l].v;
        char *rows = fd_read(tables, lists[l].name, lists[l].cols, lists[l].ncols, v->item, &n);
        if (!rows)
            return -1;
        for (Py_ssize_t i = 0; i < n && l < 2; i++) {
            char *row = rows + (size_t)i * v->item;
            uint32_t pid = l == 0 ? ((fd_finding_t *)row)->pid : ((fd_oversized_t *)row)->pid;
            int type = l == 0 ? ((fd_finding_t *)row)->type : 0;
            fd_proc_t *proc = fd_need_proc(f, pid, lists[l].name);
            if (!proc || (l == 0 && (type < 1 || type > 3))) {
                if (proc)
                    PyErr_SetString(PyExc_ValueError, "restore: findings: unknown type");
                free(rows);
                return -1;
            }
            proc->kept[type] += 1;
        }
        if (fd_vec_reserve(v, (size_t)n)) {
            free(rows);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(v->data + v->n * v->item, rows, (size_t)n * v->item);
        v->n += (size_t)n;
        free(rows);
    }
    Py_ssize_t n;
    fd_mark_t *rows =
        (fd_mark_t *)fd_read(tables, "watched", MARK_COLS, NCOLS(MARK_COLS), sizeof(*rows), &n);
    if (!rows)
        return -1;
    /* a watch of an address already dead records no death here: the deaths are restored */
    size_t deaths = f->deaths.n;
    for (Py_ssize_t i = 0; i < n; i++)
        if (fd_watch(f, rows[i].pid, rows[i].address, rows[i].ts_ns)) {
            free(rows);
            PyErr_NoMemory();
            return -1;
        }
    f->deaths.n = deaths;
    free(rows);
    return 0;
}

/* temporal (a table absent, as in states exported before it existed, is empty) */
static int fd_restore_temporal(fold_t *f, PyObject *tables)
{
    int has = PyMapping_HasKeyString(tables, "temporal");
    if (!has)
        return 0;
    Py_ssize_t n;
    fd_tm_row_t *rows = (fd_tm_row_t *)fd_read(tables, "temporal", TEMPORAL_COLS,
                                               NCOLS(TEMPORAL_COLS), sizeof(*rows), &n);
    if (!rows)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        fd_tm_row_t *r = &rows[i];
        uint32_t si;
        if (r->a < 0 || r->e <= r->a || r->e > FD_TEMPORAL_SLOTS) {
            PyErr_SetString(PyExc_ValueError, "restore: temporal: slots out of range");
            goto fail;
        }
        if (!fd_need_proc(f, r->pid, "temporal"))
            goto fail;
        FD_ROOM(f, NULL);
        if (!fd_site_get(f, r->pid, r->stack_id, r->domain, &si)) {
            PyErr_NoMemory();
            goto fail;
        }
        fd_tm_add(f, si, r->a, r->e, r->bytes, r->count);
    }
    free(rows);
    return 0;
fail:
    free(rows);
    return -1;
}

static PyTypeObject FoldType;

/* ---- the type --------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t off;
} PARAM_FIELDS[] = {
    {"temporary_ns", offsetof(fd_params_t, temporary_ns)},
    {"oversized_bytes", offsetof(fd_params_t, oversized_bytes)},
    {"timeline_buckets", offsetof(fd_params_t, timeline_buckets)},
    {"site_slots", offsetof(fd_params_t, site_slots)},
    {"initial_width_ns", offsetof(fd_params_t, initial_width_ns)},
    {"keep_findings", offsetof(fd_params_t, keep_findings)},
    {"interior_probe_bytes", offsetof(fd_params_t, interior_probe_bytes)},
    {"max_interior_checks", offsetof(fd_params_t, max_interior_checks)},
};

static int Fold_init(FoldObject *self, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Fold() takes keyword parameters only (FoldParams)");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Fold is busy folding in another thread");
        return -1;
    }
    if (!fold_params_type) {
        PyObject *mod = PyImport_ImportModule("memscope.analyzers.fold");
        if (!mod)
            return -1;
        fold_params_type = PyObject_GetAttrString(mod, "FoldParams");
        Py_DECREF(mod);
        if (!fold_params_type)
            return -1;
    }
    PyObject *empty = PyTuple_New(0);
    if (!empty)
        return -1;
    PyObject *params = PyObject_Call(fold_params_type, empty, kwargs);
    Py_DECREF(empty);
    if (!params)
        return -1;
    PyObject *values = PyObject_CallMethod(params, "as_dict", NULL);
    if (!values) {
        Py_DECREF(params);
        return -1;
    }
    fd_params_t p;
    for (size_t i = 0; i < NCOLS(PARAM_FIELDS); i++) {
        PyObject *v = PyMapping_GetItemString(values, PARAM_FIELDS[i].name);
        long long x = v ? PyLong_AsLongLong(v) : -1;
        Py_XDECREF(v);
        if (x == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "fold parameter %s must be an int of 64 bits",
                         PARAM_FIELDS[i].name);
            Py_DECREF(values);
            Py_DECREF(params);
            return -1;
        }
        *(int64_t *)((char *)&p + PARAM_FIELDS[i].off) = x;
    }
    Py_DECREF(values);
    if (self->ready)
        fd_free(&self->f);
    self->ready = 0;
    if (fd_init(&self->f, &p)) {
        fd_free(&self->f);
        Py_DECREF(params);
        PyErr_NoMemory();
        return -1;
    }
    self->ready = 1;
    Py_XSETREF(self->params, params);
    return 0;
}

static void Fold_dealloc(FoldObject *self)
{
    if (self->ready)
        fd_free(&self->f);
    Py_XDECREF(self->params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int fd_usable(FoldObject *self)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Fold is not initialized");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Fold is busy folding in another thread");
        return 0;
    }
    return 1;
}

/* "O&" converters with range checks. */
static int fd_u32(PyObject *o, void *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return 0;
    if (v > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "pid must fit 32 bits");
        return 0;
    }
    *(uint32_t *)out = (uint32_t)v;
    return 1;
}

static int fd_u64(PyObject *o, void *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return 0;
    *(uint64_t *)out = v;
    return 1;
}

static int fd_i64(PyObject *o, void *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return 0;
    *(int64_t *)out = v;
    return 1;
}

static PyObject *Fold_set_sampling(FoldObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"pid", "sample_bytes", NULL};
    uint32_t pid;
    int64_t sample_bytes;
    if (!fd_usable(self) || !PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&:set_sampling", names,
                                                         fd_u32, &pid, fd_i64, &sample_bytes))
        return NULL;
    if (sample_bytes <= 0) {
        PyErr_SetString(PyExc_ValueError, "sample_bytes must be positive");
        return NULL;
    }
    if (fd_set_sampling(&self->f, pid, sample_bytes))
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Fold_watch(FoldObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"pid", "address", "ts_ns", NULL};
    uint32_t pid;
    uint64_t address;
    int64_t ts;
    if (!fd_usable(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&O&:watch", names, fd_u32, &pid, fd_u64,
                                     &address, fd_i64, &ts))
        return NULL;
    if (fd_watch(&self->f, pid, address, ts))
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

#define FD_NFEED 10
static const struct {
    const char *name;
    char sign; /* 'u' or 'i' */
    Py_ssize_t size;
} FEED_COLS[FD_NFEED] = {
    {"pid", 'u', 4},  {"tid", 'u', 8},      {"seq", 'u', 8},     {"ts_ns", 'i', 8},
    {"kind", 'u', 1}, {"domain", 'u', 1},   {"address", 'u', 8}, {"old_address", 'u', 8},
    {"size", 'u', 8}, {"stack_id", 'u', 4},
};

/* An integer buffer of the expected signedness and size, in native byte order. */
static int fd_format_ok(const Py_buffer *v, char sign, Py_ssize_t size)
{
    const char *fmt = v->format ? v->format : "B";
    if (*fmt == '@' || *fmt == '=' || *fmt == '<')
        fmt++;
    if (!fmt[0] || fmt[1] || v->itemsize != size || v->ndim != 1)
        return 0;
    return strchr(sign == 'u' ? "BHILQN" : "bhilqn", fmt[0]) != NULL;
}

static PyObject *Fold_feed(FoldObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"pid",     "tid",         "seq",  "ts_ns",    "kind", "domain",
                            "address", "old_address", "size", "stack_id", NULL};
    PyObject *objs[FD_NFEED];
    Py_buffer views[FD_NFEED];
    int got = 0;
    if (!fd_usable(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOO:feed", names, &objs[0], &objs[1],
                                     &objs[2], &objs[3], &objs[4], &objs[5], &objs[6], &objs[7],
                                     &objs[8], &objs[9]))
        return NULL;
    Py_ssize_t n = -1;
    for (; got < FD_NFEED; got++) {
        if (PyObject_GetBuffer(objs[got], &views[got], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto fail;
        if (!fd_format_ok(&views[got], FEED_COLS[got].sign, FEED_COLS[got].size)) {
            PyErr_Format(PyExc_ValueError, "feed: %s must be a 1-D array of %s%d",
                         FEED_COLS[got].name, FEED_COLS[got].sign == 'u' ? "uint" : "int",
                         (int)(FEED_COLS[got].size * 8));
            got++;
            goto fail;
        }
        Py_ssize_t len = views[got].shape[0];
        if (n >= 0 && len != n) {
            PyErr_SetString(PyExc_ValueError, "feed: columns of different lengths");
            got++;
            goto fail;
        }
        n = len;
    }
    fd_columns_t c = {views[0].buf, views[1].buf, views[2].buf, views[3].buf, views[4].buf,
                      views[5].buf, views[6].buf, views[7].buf, views[8].buf, views[9].buf};
    size_t done;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    done = fd_feed(&self->f, &c, (size_t)n);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    for (int i = 0; i < FD_NFEED; i++)
        PyBuffer_Release(&views[i]);
    if (done < (size_t)n)
        return PyErr_Format(PyExc_MemoryError,
                            "Fold.feed: out of memory after %zu of %zd "
                            "events (those are folded)",
                            done, n);
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    return NULL;
}

static const char *const TABLE_NAMES[] = {
    "processes", "all",    "sites",    "threads",   "sizes",  "timeline", "timeline_all",
    "lifetimes", "blocks", "findings", "oversized", "deaths", "watched",  "temporal"};

/* export(tables=None): every table, or those named (an iterable of names). */
static PyObject *Fold_export(FoldObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"tables", NULL};
    PyObject *wanted = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:export", kwlist, &wanted))
        return NULL;
    if (!fd_usable(self))
        return NULL;
    PyObject *names = NULL;
    int level = 0; /* as fd_export_into's: only as much as the names need */
    if (wanted != Py_None) {
        if (!(names = PySequence_List(wanted)))
            return NULL;
        level = 1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
            const char *name = PyUnicode_Check(PyList_GET_ITEM(names, i))
                                   ? PyUnicode_AsUTF8(PyList_GET_ITEM(names, i))
                                   : NULL;
            size_t k = 0;
            while (name && k < NCOLS(TABLE_NAMES) && strcmp(name, TABLE_NAMES[k]))
                k++;
            if (!name || k == NCOLS(TABLE_NAMES)) {
                PyErr_Format(PyExc_ValueError, "unknown state tables [%R]",
                             PyList_GET_ITEM(names, i));
                Py_DECREF(names);
                return NULL;
            }
            if (k == 2 && level == 1)
                level = 2;
            else if (k > 2)
                level = 0;
        }
    }
    PyObject *out = PyDict_New();
    if (out && fd_export_into(&self->f, out, level))
        Py_CLEAR(out);
    if (out && names) {
        PyObject *picked = PyDict_New();
        for (Py_ssize_t i = 0; picked && i < PyList_GET_SIZE(names); i++) {
            PyObject *key = PyList_GET_ITEM(names, i), *value = PyDict_GetItemWithError(out, key);
            if (!value || PyDict_SetItem(picked, key, value))
                Py_CLEAR(picked);
        }
        Py_SETREF(out, picked);
    }
    Py_XDECREF(names);
    return out;
}

static PyObject *Fold_restore(PyObject *cls, PyObject *args)
{
    PyObject *params, *tables;
    if (!PyArg_ParseTuple(args, "OO:restore", &params, &tables))
        return NULL;
    PyObject *kwargs = PyDict_New(), *empty = PyTuple_New(0);
    PyObject *obj = NULL;
    if (kwargs && empty && PyDict_Update(kwargs, params) == 0)
        obj = PyObject_Call(cls, empty, kwargs);
    Py_XDECREF(kwargs);
    Py_XDECREF(empty);
    if (!obj)
        return NULL;
    if (!PyObject_TypeCheck(obj, &FoldType) || !((FoldObject *)obj)->ready) {
        Py_DECREF(obj);
        PyErr_SetString(PyExc_TypeError, "restore: not a Fold");
        return NULL;
    }
    fold_t *f = &((FoldObject *)obj)->f;
    if (fd_restore_procs(f, tables) || fd_restore_sites(f, tables) ||
        fd_restore_counts(f, tables) || fd_restore_timelines(f, tables) ||
        fd_restore_blocks(f, tables) || fd_restore_lists(f, tables) ||
        fd_restore_temporal(f, tables)) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyObject *Fold_get_params(FoldObject *self, void *closure)
{
    if (!self->params)
        Py_RETURN_NONE;
    return Py_NewRef(self->params);
}

static PyMethodDef Fold_methods[] = {
    {"set_sampling", (PyCFunction)(void (*)(void))Fold_set_sampling, METH_VARARGS | METH_KEYWORDS,
     "set_sampling(pid, sample_bytes): the process samples by byte volume."},
    {"watch", (PyCFunction)(void (*)(void))Fold_watch, METH_VARARGS | METH_KEYWORDS,
     "watch(pid, address, ts_ns): record the frees of a tracked variable's block."},
    {"feed", (PyCFunction)(void (*)(void))Fold_feed, METH_VARARGS | METH_KEYWORDS,
     "feed(pid, tid, seq, ts_ns, kind, domain, address, old_address, size, stack_id): fold "
     "events (equal-length arrays of u4,u8,u8,i8,u1,u1,u8,u8,u8,u4) in the order given."},
    {"export", (PyCFunction)(void (*)(void))Fold_export, METH_VARARGS | METH_KEYWORDS,
     "export(tables=None) -> {table: {column: numpy array}} (see memscope.analyzers.fold)."},
    {"restore", (PyCFunction)Fold_restore, METH_VARARGS | METH_CLASS,
     "restore(params, tables) -> a Fold equal to the one that exported tables."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Fold_getset[] = {
    {"params", (getter)Fold_get_params, NULL, "the FoldParams of this state", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FoldType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memscope.analyzers._fold.Fold",
    .tp_doc = "The streaming fold's state (the C twin of memscope.analyzers.fold.PyFold).",
    .tp_basicsize = sizeof(FoldObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Fold_init,
    .tp_dealloc = (destructor)Fold_dealloc,
    .tp_methods = Fold_methods,
    .tp_getset = Fold_getset,
};

static struct PyModuleDef fold_module = {
    PyModuleDef_HEAD_INIT,
    "_fold",
    "The streaming fold in C (see memscope.analyzers.fold for the specification).",
    -1,
    NULL,
};

PyMODINIT_FUNC PyInit__fold(void)
{
    PyObject *numpy = PyImport_ImportModule("numpy");
    if (!numpy)
        return NULL;
    np_empty = PyObject_GetAttrString(numpy, "empty");
    np_contiguous = PyObject_GetAttrString(numpy, "ascontiguousarray");
    Py_DECREF(numpy);
    if (!np_empty || !np_contiguous || PyType_Ready(&FoldType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fold_module);
    if (!m)
        return NULL;
    Py_INCREF(&FoldType);
    if (PyModule_AddObject(m, "Fold", (PyObject *)&FoldType) < 0) {
        Py_DECREF(&FoldType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
