/* memscope.analyzers._statfold: the running totals of the streaming fold, and nothing else.
 *
 * ``StatsFold`` folds memory events exactly as ``memscope.analyzers.fold`` does for the
 * per-process counters ``Tracker.get_stats()`` reports of a full-mode process (allocations,
 * bytes_allocated, frees, bytes_freed, live_blocks, live_bytes, reused, unmatched_frees,
 * peak_bytes, peak_ts_ns), keeping only one map per process: live address -> size. No sites,
 * threads, timelines or findings: a few ns per event instead of a hundred, so a broker can
 * keep it current while a program allocates at full speed.
 *
 * Rules (the fold's, restricted to these figures): an event with address 0 is skipped unless
 * it is a realloc with an old address. free: end(address). realloc: end(old) when old != 0,
 * then start(address) when address != 0. alloc/calloc: start(address). Other kinds count
 * nothing. end: a live address is a free (its bytes leave); anything else (never seen,
 * already ended) is an unmatched free. start: a live address is ended as *reused* (not a
 * free); the new block is live; the peak moves when the live bytes exceed it (ts of the
 * event). Sampling weights are not computed: use it for full-mode processes only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rec1.h" /* record kinds: protocol/rec1.h */
enum { SF_ALLOC = TR_ALLOC, SF_CALLOC = TR_CALLOC, SF_REALLOC = TR_REALLOC, SF_FREE = TR_FREE };

typedef struct {
    uint64_t addr; /* 0: empty */
    uint64_t size;
} sf_slot_t;

typedef struct {
    uint32_t pid;
    sf_slot_t *slots;
    uint64_t mask, count;
    int shift; /* 64 - log2(slots): a slot is the hash's high bits */
    int64_t events, allocations, bytes_allocated, frees, bytes_freed, live_blocks, live_bytes,
        reused, unmatched_frees, peak_bytes, peak_ts_ns, last_ts_ns;
    int64_t peak_blocks; /* live blocks when the peak was reached */
} sf_proc_t;

typedef struct {
    PyObject_HEAD sf_proc_t *procs;
    size_t nprocs, cap;
    int busy;
} StatsFold;

/* Fibonacci hashing: the product's high bits mix every bit of the address (its low bits
 * would keep the heap's runs of neighbouring blocks in neighbouring slots). */
static inline uint64_t sf_home(const sf_proc_t *p, uint64_t addr)
{
    return (addr * 0x9E3779B97F4A7C15ull) >> p->shift;
}

static int sf_map_init(sf_proc_t *p, uint64_t capacity)
{
    p->slots = calloc(capacity, sizeof(sf_slot_t));
    if (p->slots == NULL) {
        return -1;
    }
    p->mask = capacity - 1;
    p->count = 0;
    p->shift = 64;
    for (uint64_t c = capacity; c > 1; c >>= 1) {
        p->shift--;
    }
    return 0;
}

static inline sf_slot_t *sf_find(const sf_proc_t *p, uint64_t addr)
{
    uint64_t i = sf_home(p, addr);
    for (;;) {
        sf_slot_t *s = &p->slots[i];
        if (s->addr == addr || s->addr == 0) {
            return s;
        }
        i = (i + 1) & p->mask;
    }
}

static int sf_grow(sf_proc_t *p)
{
    sf_slot_t *old = p->slots;
    uint64_t n = p->mask + 1;
    if (sf_map_init(p, n * 2) < 0) {
        p->slots = old;
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (old[i].addr != 0) {
            *sf_find(p, old[i].addr) = old[i];
            p->count++;
        }
    }
    free(old);
    return 0;
}

/* Backward-shift deletion: no tombstones, probes stay short. */
static void sf_remove(sf_proc_t *p, sf_slot_t *s)
{
    uint64_t i = (uint64_t)(s - p->slots);
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & p->mask;
        if (p->slots[j].addr == 0) {
            break;
        }
        uint64_t home = sf_home(p, p->slots[j].addr);
        /* slot j may move to i when its home is not within (i, j] cyclically */
        if (((j - home) & p->mask) >= ((j - i) & p->mask)) {
            p->slots[i] = p->slots[j];
            i = j;
        }
    }
    p->slots[i].addr = 0;
    p->count--;
}

static void sf_end(sf_proc_t *p, uint64_t addr)
{
    sf_slot_t *s = sf_find(p, addr);
    if (s->addr == 0) {
        p->unmatched_frees++;
        return;
    }
    p->frees++;
    p->bytes_freed += (int64_t)s->size;
    p->live_blocks--;
    p->live_bytes -= (int64_t)s->size;
    sf_remove(p, s);
}

static int sf_start(sf_proc_t *p, uint64_t addr, uint64_t size, int64_t ts)
{
    if ((p->count + 1) * 2 > p->mask + 1 && sf_grow(p) < 0) {
        return -1;
    }
    sf_slot_t *s = sf_find(p, addr);
    if (s->addr != 0) { /* its free was not recorded: it leaves, not as a free */
        p->reused++;
        p->live_blocks--;
        p->live_bytes -= (int64_t)s->size;
    } else {
        s->addr = addr;
        p->count++;
    }
    s->size = size;
    p->allocations++;
    p->bytes_allocated += (int64_t)size;
    p->live_blocks++;
    p->live_bytes += (int64_t)size;
    if (p->live_bytes > p->peak_bytes) {
        p->peak_bytes = p->live_bytes;
        p->peak_ts_ns = ts;
        p->peak_blocks = p->live_blocks;
    }
    return 0;
}

static sf_proc_t *sf_proc(StatsFold *f, uint32_t pid, int create)
{
    for (size_t i = 0; i < f->nprocs; i++) {
        if (f->procs[i].pid == pid) {
            return &f->procs[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (f->nprocs == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        sf_proc_t *procs = realloc(f->procs, cap * sizeof(sf_proc_t));
        if (procs == NULL) {
            return NULL;
        }
        f->procs = procs;
        f->cap = cap;
    }
    sf_proc_t *p = &f->procs[f->nprocs];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->peak_ts_ns = -1;
    p->last_ts_ns = -1;
    if (sf_map_init(p, 1024) < 0) {
        return NULL;
    }
    f->nprocs++;
    return p;
}

/* Fold n events; -1 when out of memory (the events before the failing one are folded). */
static int sf_feed(StatsFold *f, const uint32_t *pid, const int64_t *ts, const uint8_t *kind,
                   const uint64_t *address, const uint64_t *old, const uint64_t *size, size_t n)
{
    sf_proc_t *p = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned k = kind[i];
        if (address[i] == 0 && !(k == SF_REALLOC && old[i] != 0)) {
            continue;
        }
        if (p == NULL || p->pid != pid[i]) {
            p = sf_proc(f, pid[i], 1);
            if (p == NULL) {
                return -1;
            }
        }
        p->events++;
        if (ts[i] > p->last_ts_ns) {
            p->last_ts_ns = ts[i];
        }
        if (k == SF_FREE) {
            sf_end(p, address[i]);
        } else if (k == SF_REALLOC) {
            if (old[i] != 0) {
                sf_end(p, old[i]);
            }
            if (address[i] != 0 && sf_start(p, address[i], size[i], ts[i]) < 0) {
                return -1;
            }
        } else if (k == SF_ALLOC || k == SF_CALLOC) {
            if (sf_start(p, address[i], size[i], ts[i]) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ the Python type */

/* The columns feed() takes (memscope.analyzers._statfold.FEED_COLUMNS). */
#define SF_NCOLS 6
static const char *const sf_columns[SF_NCOLS] = {"pid",     "ts_ns",       "kind",
                                                 "address", "old_address", "size"};
static const Py_ssize_t sf_itemsize[SF_NCOLS] = {4, 8, 1, 8, 8, 8};

static PyObject *StatsFold_feed(StatsFold *self, PyObject *args)
{
    if (PyTuple_GET_SIZE(args) != SF_NCOLS) {
        PyErr_SetString(PyExc_TypeError,
                        "feed() takes pid, ts_ns, kind, address, old_address, size");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "StatsFold used by two threads at once");
        return NULL;
    }
    Py_buffer views[SF_NCOLS];
    int got = 0;
    Py_ssize_t n = -1;
    PyObject *result = NULL;
    for (; got < SF_NCOLS; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, got), &views[got], PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        Py_ssize_t items = views[got].len / sf_itemsize[got];
        if (views[got].itemsize != sf_itemsize[got] || (n >= 0 && items != n)) {
            PyErr_Format(PyExc_ValueError, "column %s: %zd-byte items of equal length expected",
                         sf_columns[got], sf_itemsize[got]);
            got++;
            goto done;
        }
        n = items;
    }
    int rc;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = sf_feed(self, views[0].buf, views[1].buf, views[2].buf, views[3].buf, views[4].buf,
                 views[5].buf, (size_t)n);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < got; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

static PyObject *StatsFold_noop(StatsFold *self, PyObject *args)
{
    (void)self;
    (void)args;
    Py_RETURN_NONE;
}

static PyObject *StatsFold_totals(StatsFold *self, PyObject *arg)
{
    unsigned long pid = PyLong_AsUnsignedLong(arg);
    if (pid == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    sf_proc_t *p = sf_proc(self, (uint32_t)pid, 0);
    if (p == NULL) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue(
        "{sLsLsLsLsLsLsLsLsLsLsLsLsL}", "events", (long long)p->events, "allocations",
        (long long)p->allocations, "bytes_allocated", (long long)p->bytes_allocated, "frees",
        (long long)p->frees, "bytes_freed", (long long)p->bytes_freed, "live_blocks",
        (long long)p->live_blocks, "live_bytes", (long long)p->live_bytes, "reused",
        (long long)p->reused, "unmatched_frees", (long long)p->unmatched_frees, "peak_bytes",
        (long long)p->peak_bytes, "peak_ts_ns", (long long)p->peak_ts_ns, "last_ts_ns",
        (long long)p->last_ts_ns, "peak_blocks", (long long)p->peak_blocks);
}

static PyObject *StatsFold_pids(StatsFold *self, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyList_New((Py_ssize_t)self->nprocs);
    for (size_t i = 0; out != NULL && i < self->nprocs; i++) {
        PyObject *v = PyLong_FromUnsignedLong(self->procs[i].pid);
        if (v == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, v);
    }
    return out;
}

static void StatsFold_dealloc(StatsFold *self)
{
    for (size_t i = 0; i < self->nprocs; i++) {
        free(self->procs[i].slots);
    }
    free(self->procs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef StatsFold_methods[] = {
    {"feed", (PyCFunction)StatsFold_feed, METH_VARARGS,
     "feed(pid, ts_ns, kind, address, old_address, size): fold events (u4 i8 u1 u8 u8 u8)"},
    {"set_sampling", (PyCFunction)StatsFold_noop, METH_VARARGS, "Ignored (no weights here)."},
    {"watch", (PyCFunction)StatsFold_noop, METH_VARARGS, "Ignored (no deaths here)."},
    {"totals", (PyCFunction)StatsFold_totals, METH_O, "The counters of one pid, or None."},
    {"pids", (PyCFunction)StatsFold_pids, METH_NOARGS, "The pids seen, in order of arrival."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StatsFoldType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memscope.analyzers._statfold.StatsFold",
    .tp_basicsize = sizeof(StatsFold),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The fold's per-process running totals (see the module source).",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)StatsFold_dealloc,
    .tp_methods = StatsFold_methods,
};

static struct PyModuleDef sf_module = {PyModuleDef_HEAD_INIT, "_statfold",
                                       "The streaming fold's running totals alone.", -1, NULL};

PyMODINIT_FUNC PyInit__statfold(void)
{
    if (PyType_Ready(&StatsFoldType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&sf_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&StatsFoldType);
    if (PyModule_AddObject(m, "StatsFold", (PyObject *)&StatsFoldType) < 0) {
        Py_DECREF(&StatsFoldType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
