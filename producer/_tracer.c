/* memscope's native core: the Python module (start/stop, drain, stack ids, block addresses,
 * rec1 decoding). The hooks live in tr_hooks.c, the buffers in tr_buffer.c, the stack tree
 * in tr_stack.c. Python wraps this module in memscope.producer.capture. */
#include "tr_core.h"
#include "tr_native_mode.h" /* native mode hooks: drain, methods */

#include <stdbool.h>
#include <unistd.h>

/* ------------------------------------------------------------------ clock */

/* Decided by the first tr_clock_init (GIL held, before any hook records); read-only after. */
int tr_use_tsc;
/* The calibration start point (GIL). */
static tr_clock_t tr_clock_base;
static int tr_clock_ready;

#if TR_HAVE_TSC
/* A (tick, ns) pair read as close together as possible: the tightest of a few tries, so a
 * preemption between the two reads cannot skew the calibration. */
static void tr_clock_pair(uint64_t *tick, int64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 7; i++) {
        uint64_t a = __rdtsc();
        int64_t n = (int64_t)tr_monotonic_ns();
        uint64_t b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *ns = n;
            *tick = a + (b - a) / 2;
        }
    }
}
#endif

void tr_clock_init(void)
{
    if (tr_clock_ready) {
        return;
    }
    tr_clock_ready = 1;
    tr_clock_base = (tr_clock_t){0, 0, 1ull << 32};
#if TR_HAVE_TSC
    uint64_t t0, t1;
    int64_t n0, n1;
    tr_clock_pair(&t0, &n0);
    do {
        tr_clock_pair(&t1, &n1);
    } while (n1 - n0 < 2000000);
    double ticks_per_ns = (double)(t1 - t0) / (double)(n1 - n0);
    if (t1 > t0 && ticks_per_ns > 0.05 && ticks_per_ns < 20.0) {
        tr_use_tsc = 1;
        uint64_t mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
        tr_clock_base = (tr_clock_t){t0, n0, mult};
    }
#endif
}

void tr_clock_now(tr_clock_t *out)
{
    if (!tr_use_tsc) {
        *out = (tr_clock_t){0, 0, 1ull << 32};
        return;
    }
#if TR_HAVE_TSC
    uint64_t t;
    int64_t n;
    tr_clock_pair(&t, &n);
    uint64_t mult = tr_clock_base.mult;
    if (n - tr_clock_base.ns > 50000000 && t > tr_clock_base.tick) {
        /* a longer baseline gives a better rate */
        mult = (uint64_t)(((unsigned __int128)(n - tr_clock_base.ns) << 32) /
                          (t - tr_clock_base.tick));
    }
    *out = (tr_clock_t){t, n, mult};
#endif
}

/* ------------------------------------------------------------------ helpers */

int tr_append_row(PyObject *rare, const char *table, const char *const *names,
                  PyObject **values, int n)
{
    int rc = -1;
    for (int i = 0; i < n; i++) {
        if (values[i] == NULL) {
            goto done;
        }
    }
    PyObject *columns = PyDict_GetItemString(rare, table);
    if (columns == NULL) {
        columns = PyDict_New();
        if (columns == NULL || PyDict_SetItemString(rare, table, columns) < 0) {
            Py_XDECREF(columns);
            goto done;
        }
        Py_DECREF(columns); /* borrowed from rare from now on */
    }
    for (int i = 0; i < n; i++) {
        PyObject *list = PyDict_GetItemString(columns, names[i]);
        if (list == NULL) {
            list = PyList_New(0);
            if (list == NULL || PyDict_SetItemString(columns, names[i], list) < 0) {
                Py_XDECREF(list);
                goto done;
            }
            Py_DECREF(list);
        }
        if (PyList_Append(list, values[i]) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        Py_XDECREF(values[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------ module state */

/* All of these are protected by the GIL (only Python-callable functions touch them). */
static int tr_started;
static int tr_numpy_active;
static int tr_draining; /* a drain is in progress (it may let other threads run) */
int tr_gc_paused;        /* the drain disabled the garbage collector (re-enabled while the
                          * drain lets other threads run, so a fork never inherits it off) */
static int tr_atfork_ready;
static pid_t tr_pid; /* the process the C state belongs to (set at start and in a child) */
static uint64_t tr_shipped_events, tr_shipped_bytes;

static void tr_atfork_prepare(void)
{
    tr_hooks_atfork_prepare();
    tr_buffers_atfork_prepare();
    tr_own_atfork_prepare();
}

static void tr_atfork_parent(void)
{
    tr_own_atfork_parent();
    tr_buffers_atfork_parent();
    tr_hooks_atfork_parent();
}

/* Runs in the child right after fork(), before any Python code: only plain memory work. */
static void tr_atfork_child(void)
{
    tr_own_atfork_child();
    tr_buffers_after_fork_child();
    tr_hooks_after_fork_child();
    tr_stack_reset_emitted();
    tr_draining = 0;
    tr_shipped_events = 0;
    tr_shipped_bytes = 0;
    tr_pid = getpid();
}

static PyObject *py_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"mode", "sample_bytes", "max_buffer_bytes", "numpy",
                             "reuse_stamps", "arena_dir", NULL};
    int mode = TR_MODE_FULL, numpy = 1, reuse_stamps = 1;
    long long sample_bytes = 65536;
    unsigned long long max_buffer = 512ull << 20;
    const char *arena_dir = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|iLKppz", kwlist, &mode, &sample_bytes,
                                     &max_buffer, &numpy, &reuse_stamps, &arena_dir)) {
        return NULL;
    }
    if (mode < TR_MODE_FULL || mode > TR_MODE_HOOKS_ONLY) {
        return PyErr_Format(PyExc_ValueError, "unknown capture mode %d", mode);
    }
    if (sample_bytes < 1 || max_buffer < 2 * TR_BLOCK_SIZE) {
        return PyErr_Format(PyExc_ValueError,
                            "sample_bytes must be >= 1 and max_buffer_bytes >= %d",
                            2 * TR_BLOCK_SIZE);
    }
    if (tr_started) {
        PyErr_SetString(PyExc_RuntimeError, "capture is already started");
        return NULL;
    }
    if (!tr_hooks_layout_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "memscope was built by a compiler whose bit-field "
                        "layout tr_live_make does not match");
        return NULL;
    }
    if (tr_buffers_init() < 0) {
        return NULL;
    }
    if (!tr_atfork_ready) {
        if (pthread_atfork(tr_atfork_prepare, tr_atfork_parent, tr_atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return NULL;
        }
        tr_atfork_ready = 1;
    }
    tr_clock_init();
    tr_pid = getpid();
    int arena = tr_buffers_arena(tr_draining ? NULL : arena_dir);
    if (arena < 0) {
        PyErr_SetString(PyExc_MemoryError, "no memory for the tracer's buffers");
        return NULL;
    }
    tr_clock_t now; /* until the first drain, a harvest maps ticks with this reading */
    tr_clock_now(&now);
    tr_arena_note_clock(&now);
    if (numpy) {
        int rc = tr_numpy_install();
        if (rc < 0) {
            return NULL;
        }
        tr_numpy_active = rc;
    }
    tr_mode = mode;
    tr_reuse_stamps = reuse_stamps;
    tr_sample_bytes = sample_bytes;
    tr_max_buffer_bytes = max_buffer;
    tr_hooks_reset_maps();
    tr_buffers_reset_high_water();
    if (tr_hooks_install() < 0) {
        return NULL;
    }
    tr_started = 1;
    __atomic_store_n(&tr_enabled, 1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *py_stop(PyObject *self, PyObject *noargs)
{
    if (!tr_started) {
        Py_RETURN_NONE;
    }
    __atomic_store_n(&tr_enabled, 0, __ATOMIC_RELEASE);
    tr_hooks_uninstall();
    if (tr_numpy_active) {
        tr_numpy_uninstall();
        tr_numpy_active = 0;
    }
    tr_started = 0;
    Py_RETURN_NONE;
}

static PyObject *py_is_active(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(tr_started);
}

static PyObject *py_numpy_traced(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(tr_numpy_active);
}

/* numpy imported after start (capture's import watcher): trace its data memory from now. */
static PyObject *py_numpy_install(PyObject *self, PyObject *noargs)
{
    if (tr_started && !tr_numpy_active) {
        int rc = tr_numpy_install();
        if (rc < 0) {
            return NULL;
        }
        tr_numpy_active = rc;
    }
    return PyBool_FromLong(tr_numpy_active);
}

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
    static const char *const names[] = {"ts_ns", "events", "bytes", "drops",
                                        "buffer_high_water", "current_bytes", "peak_bytes"};
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
        int64_t promoted = tr_hooks_promote(chunks, &clock, !tr_started);
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

static PyObject *py_drain(PyObject *self, PyObject *args)
{
    unsigned long long max_events = 8000000;
    int commit = 1;
    if (!PyArg_ParseTuple(args, "|Kp", &max_events, &commit)) {
        return NULL;
    }
    PyObject *chunks = PyList_New(0);
    PyObject *rare = PyDict_New();
    if (chunks == NULL || rare == NULL) {
        goto fail;
    }
    if (tr_draining) {
        /* another drain is running (it let this thread in): nothing is lost, data waits */
        return Py_BuildValue("(NN)", chunks, rare);
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
    if (rc < 0) {
        goto fail;
    }
    return Py_BuildValue("(NN)", chunks, rare);
fail:
    Py_XDECREF(chunks);
    Py_XDECREF(rare);
    return NULL;
}

/* commit(next_seq) -> bool: everything drained so far is in batches the publisher has
 * spooled, the last of them before `next_seq`: the drained blocks are recycled and a crash
 * harvest starts from here. False (nothing done) while a drain is running. */
static PyObject *py_commit(PyObject *self, PyObject *args)
{
    unsigned long long next_seq;
    if (!PyArg_ParseTuple(args, "K", &next_seq)) {
        return NULL;
    }
    if (tr_draining) {
        Py_RETURN_FALSE;
    }
    tr_buffers_commit(next_seq);
    Py_RETURN_TRUE;
}

/* pause_thread() -> token / resume_thread(token): while paused, the calling thread's
 * allocations and frees are not recorded (its blocks are memscope's own, tr_own.c), so
 * memscope's own bookkeeping in the program's threads (track_var, scope rows) stays out of
 * the trace. The token is the previous `ignored` bits (a small int: no allocation), so
 * pauses nest. */
static PyObject *py_pause_thread(PyObject *self, PyObject *noargs)
{
    tr_thread_t *t = tr_current();
    if (t == NULL) {
        return PyLong_FromLong(-1);
    }
    int previous = t->ignored;
    t->ignored |= TR_PAUSED;
    return PyLong_FromLong(previous);
}

static PyObject *py_resume_thread(PyObject *self, PyObject *token)
{
    long previous = PyLong_AsLong(token);
    if (previous == -1 && PyErr_Occurred()) {
        return NULL;
    }
    tr_thread_t *t = tr_current();
    if (t != NULL && previous >= 0) {
        t->ignored = (uint8_t)previous;
    }
    Py_RETURN_NONE;
}

static PyObject *py_ignore_current_thread(PyObject *self, PyObject *noargs)
{
    tr_thread_t *t = tr_current();
    if (t == NULL) {
        PyErr_SetString(PyExc_MemoryError, "no memory for the tracer's thread state");
        return NULL;
    }
    t->ignored |= TR_IGNORED;
    Py_RETURN_NONE;
}

static PyObject *py_thread_id(PyObject *self, PyObject *noargs)
{
    tr_thread_t *t = tr_current();
    if (t == NULL) {
        PyErr_SetString(PyExc_MemoryError, "no memory for the tracer's thread state");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(t->tid);
}

static PyObject *py_thread_id_of(PyObject *self, PyObject *ident)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(ident);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(tr_tid_of_ident(value));
}

static PyObject *py_current_stack_id(PyObject *self, PyObject *args)
{
    int skip = 0;
    if (!PyArg_ParseTuple(args, "|i", &skip)) {
        return NULL;
    }
    tr_thread_t *t = tr_current();
    if (t == NULL) {
        return PyLong_FromLong(0);
    }
    uint8_t was_busy = t->busy;
    t->busy = 1;
    uint32_t id = tr_stack_current_skip(t, skip < 0 ? 0 : skip);
    t->busy = was_busy;
    return PyLong_FromUnsignedLong(id);
}

/* The start of obj's allocation block: the GC header (two words on 3.11-3.13) and, for
 * types whose dict/weakref pointers live before the object, those two words precede it. */
static PyObject *py_block_address(PyObject *self, PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    size_t pre = 0;
    if (PyType_IS_GC(tp)) {
        pre += 2 * sizeof(uintptr_t);
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (tp->tp_flags & (Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF)) {
        pre += 2 * sizeof(PyObject *);
    }
#else
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        pre += 2 * sizeof(PyObject *);
    }
#endif
    return PyLong_FromUnsignedLongLong((unsigned long long)((uintptr_t)obj - pre));
}

static PyObject *py_pin(PyObject *self, PyObject *args)
{
    unsigned long long addr, size = 0;
    if (!PyArg_ParseTuple(args, "K|K", &addr, &size)) {
        return NULL;
    }
    tr_thread_t *t = tr_current();
    if (!tr_started || t == NULL) {
        Py_RETURN_FALSE;
    }
    uint8_t was_busy = t->busy;
    t->busy = 1;
    int rc = tr_hooks_pin(addr, size, t);
    t->busy = was_busy;
    return PyBool_FromLong(rc);
}

/* Blocks whose free means obj is dead, besides obj's own block: CPython keeps dead lists
 * on a free list (their object block is not freed), but a non-empty list's item array is
 * freed when it dies. (The array may move when the list grows; its realloc events link the
 * old address to the new one.) */
static PyObject *py_inner_blocks(PyObject *self, PyObject *obj)
{
    if (PyList_CheckExact(obj) && ((PyListObject *)obj)->ob_item != NULL) {
        uintptr_t items = (uintptr_t)((PyListObject *)obj)->ob_item;
        return Py_BuildValue("[K]", (unsigned long long)items);
    }
    return PyList_New(0);
}

static PyObject *py_after_fork_child(PyObject *self, PyObject *noargs)
{
    /* The pthread_atfork child handler has already reset the C state; this only acts in a
     * process the state does not belong to (e.g. a fork done while the handler was not yet
     * registered), so calling it twice, or in the parent, changes nothing. */
    if (tr_pid != 0 && tr_pid != getpid()) {
        tr_atfork_child();
    }
    Py_RETURN_NONE;
}

static PyObject *py_stats(PyObject *self, PyObject *noargs)
{
    uint64_t events, drops, pending, high, live, slots;
    tr_buffer_stats(&events, &drops, &pending, &high);
    tr_hooks_map_stats(&live, &slots);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:i,s:K,s:K}", "events",
                         (unsigned long long)events, "drops", (unsigned long long)drops,
                         "pending_bytes", (unsigned long long)pending, "buffer_high_water",
                         (unsigned long long)high, "shipped_events",
                         (unsigned long long)tr_shipped_events, "shipped_bytes",
                         (unsigned long long)tr_shipped_bytes, "stacks", tr_stack_count(),
                         "tsc", tr_use_tsc, "live_blocks", (unsigned long long)live,
                         "live_map_slots", (unsigned long long)slots);
}

static PyObject *py_term_install(PyObject *self, PyObject *fd)
{
    long value = PyLong_AsLong(fd);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyBool_FromLong(tr_term_install((int)value));
}

static PyObject *py_term_pending(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(tr_term_pending());
}

static PyObject *py_term_uninstall(PyObject *self, PyObject *noargs)
{
    tr_term_uninstall();
    Py_RETURN_NONE;
}

static PyObject *py_term_release(PyObject *self, PyObject *noargs)
{
    tr_term_release();
    Py_RETURN_NONE;
}

static PyObject *py_term_raise(PyObject *self, PyObject *noargs)
{
    tr_term_raise();
    Py_RETURN_NONE;
}

static PyMethodDef tr_methods[] = {
    {"start", (PyCFunction)(void (*)(void))py_start, METH_VARARGS | METH_KEYWORDS,
     "start(mode=0, sample_bytes=65536, max_buffer_bytes=512 MiB, numpy=True, "
     "reuse_stamps=True)"},
    {"stop", py_stop, METH_NOARGS, "Stop recording and restore the previous allocators."},
    {"is_active", py_is_active, METH_NOARGS, "Whether the hooks are recording."},
    {"numpy_traced", py_numpy_traced, METH_NOARGS, "Whether numpy's data memory is traced."},
    {"numpy_install", py_numpy_install, METH_NOARGS,
     "Trace numpy's data memory from now (numpy imported after start); returns numpy_traced()."},
    {"drain", py_drain, METH_VARARGS,
     "drain(max_events, commit=True) -> (chunks, rare tables)"},
    {"commit", py_commit, METH_VARARGS,
     "commit(next_seq): the drained records are spooled; recycle their buffers."},
    {"arena_identify", tr_py_arena_identify, METH_VARARGS,
     "arena_identify(producer, spool, address): name the arena's owner for a harvester."},
    {"arena_path", tr_py_arena_path, METH_NOARGS, "The arena's file, or None."},
    {"arena_close", tr_py_arena_close, METH_VARARGS,
     "arena_close(remove=True): everything is shipped; remove the arena's file."},
    {"harvest", tr_py_harvest, METH_VARARGS,
     "harvest(path) -> what a dead process's arena holds past its last commit."},
    {"ignore_current_thread", py_ignore_current_thread, METH_NOARGS,
     "Never trace the calling thread's allocations."},
    {"current_stack_id", py_current_stack_id, METH_VARARGS,
     "current_stack_id(skip=0): intern the caller's stack (minus `skip` innermost frames)."},
    {"block_address", py_block_address, METH_O, "Start of the object's allocation block."},
    {"inner_blocks", py_inner_blocks, METH_O,
     "inner_blocks(obj) -> [address]: other blocks whose free means obj died (list items)."},
    {"pin", py_pin, METH_VARARGS,
     "pin(address, size=0) -> bool: make sure the block's free is recorded in any mode."},
    {"after_fork_child", py_after_fork_child, METH_NOARGS, "Reset buffers in a forked child."},
    {"decode_rec1", tr_py_decode_rec1, METH_VARARGS,
     "decode_rec1(data, n) -> 7 bytearrays (MEMORY_COLUMNS order)"},
    {"validate_rec1", tr_py_validate_rec1, METH_VARARGS,
     "validate_rec1(data, n): raise WireError iff decode_rec1 would (builds no columns)"},
    {"decode_rec1_into", tr_py_decode_rec1_into, METH_VARARGS,
     "decode_rec1_into(data, n, 7 writable columns, row) -> n"},
    {"encode_rec1", tr_py_encode_rec1, METH_VARARGS,
     "encode_rec1(7 column buffers) -> rec1 data (identity clock, zero start state)"},
    {"stats", py_stats, METH_NOARGS, "Counters of the native core."},
    /* native mode hooks (tr_native_mode.c) */
    {"native_attach", tr_nm_py_attach, METH_VARARGS,
     "native_attach(path=None): connect to the allocator shim; when it is not preloaded, "
     "load it from `path` and patch the loaded libraries (RuntimeError without a path)."},
    {"native_detach", tr_nm_py_detach, METH_NOARGS, "Stop receiving native events."},
    {"native_stats", tr_nm_py_stats, METH_NOARGS,
     "Counters of the preloaded shim (None when it is not preloaded)."},
    /* memscope's own bookkeeping kept out of the trace (track_var, scopes) */
    {"term_install", py_term_install, METH_O,
     "While SIGTERM's action is the default: on SIGTERM, write b'T' to fd (tr_term.c)."},
    {"term_pending", py_term_pending, METH_NOARGS, "Whether SIGTERM arrived."},
    {"term_uninstall", py_term_uninstall, METH_NOARGS, "SIGTERM's default action again."},
    {"term_raise", py_term_raise, METH_NOARGS, "Die of SIGTERM now (default action)."},
    {"term_release", py_term_release, METH_NOARGS,
     "Unless a session armed it with its pipe: the default action (and a pending SIGTERM)."},
    {"thread_id", py_thread_id, METH_NOARGS,
     "The calling thread's id in the log (a serial, never reused in this process)."},
    {"thread_id_of", py_thread_id_of, METH_O,
     "thread_id() of the live thread with this threading ident (0: not seen yet)."},
    {"pause_thread", py_pause_thread, METH_NOARGS,
     "Stop recording the calling thread's events; returns a token for resume_thread."},
    {"resume_thread", py_resume_thread, METH_O, "Undo pause_thread(token)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tracer_module = {
    PyModuleDef_HEAD_INIT, "_tracer", "memscope's native tracer core.", -1, tr_methods,
};

PyMODINIT_FUNC PyInit__tracer(void)
{
    PyObject *m = PyModule_Create(&tracer_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "MODE_FULL", TR_MODE_FULL) < 0 ||
        PyModule_AddIntConstant(m, "MODE_AGGREGATED", TR_MODE_AGGREGATED) < 0 ||
        PyModule_AddIntConstant(m, "MODE_SAMPLED", TR_MODE_SAMPLED) < 0 ||
        PyModule_AddIntConstant(m, "MODE_HOOKS_ONLY", TR_MODE_HOOKS_ONLY) < 0 ||
        PyModule_AddIntConstant(m, "REC1_HEADER", TR_REC1_HEADER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
