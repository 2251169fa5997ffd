/* The memscope.producer._tracer module: argument parsing and the method table, nothing else.
 * The capture's start and stop are in tr_capture.c, the drain in tr_drain.c, the hooks in
 * tr_hooks.c, the buffers in tr_buffer.c and tr_arena.c, the stack tree in tr_stack.c.
 * Python wraps this module in memscope.producer.capture. */
#include "tr_core.h"
#include "tr_native_mode.h" /* native mode's methods */
#include "rec1_py.h"        /* KIND_*, DOMAIN_*, REC1_HEADER */

#include <stdbool.h>

static PyObject *py_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "mode", "sample_bytes", "max_buffer_bytes", "numpy", "reuse_stamps", "arena_dir", NULL};
    tr_start_t o = {.mode = TR_MODE_FULL,
                    .sample_bytes = 65536,
                    .max_buffer = 512ull << 20,
                    .numpy = 1,
                    .reuse_stamps = 1,
                    .arena_dir = NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|iLKppz", kwlist, &o.mode, &o.sample_bytes,
                                     &o.max_buffer, &o.numpy, &o.reuse_stamps, &o.arena_dir)) {
        return NULL;
    }
    if (tr_capture_start(&o) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_stop(PyObject *self, PyObject *noargs)
{
    tr_capture_stop();
    Py_RETURN_NONE;
}

static PyObject *py_is_active(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(tr_capture_active());
}

static PyObject *py_numpy_traced(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(tr_capture_numpy_traced());
}

static PyObject *py_numpy_install(PyObject *self, PyObject *noargs)
{
    int rc = tr_capture_numpy_install();
    return rc < 0 ? NULL : PyBool_FromLong(rc);
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
    if (chunks == NULL || rare == NULL || tr_drain(chunks, rare, max_events, commit) < 0) {
        Py_XDECREF(chunks);
        Py_XDECREF(rare);
        return NULL;
    }
    return Py_BuildValue("(NN)", chunks, rare);
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
    return PyBool_FromLong(tr_drain_commit(next_seq));
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
    if (!tr_capture_active() || t == NULL) {
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
    tr_capture_after_fork_child();
    Py_RETURN_NONE;
}

static PyObject *py_stats(PyObject *self, PyObject *noargs)
{
    uint64_t events, drops, pending, high, live, slots, shipped_events, shipped_bytes;
    tr_buffer_stats(&events, &drops, &pending, &high);
    tr_drain_shipped(&shipped_events, &shipped_bytes);
    tr_hooks_map_stats(&live, &slots);
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:i,s:K,s:K}", "events", (unsigned long long)events, "drops",
        (unsigned long long)drops, "pending_bytes", (unsigned long long)pending,
        "buffer_high_water", (unsigned long long)high, "shipped_events",
        (unsigned long long)shipped_events, "shipped_bytes", (unsigned long long)shipped_bytes,
        "stacks", tr_stack_count(), "tsc", tr_use_tsc, "live_blocks", (unsigned long long)live,
        "live_map_slots", (unsigned long long)slots);
}

static PyObject *py_pending_bytes(PyObject *self, PyObject *noargs)
{
    return PyLong_FromUnsignedLongLong(tr_buffer_pending());
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
    {"drain", py_drain, METH_VARARGS, "drain(max_events, commit=True) -> (chunks, rare tables)"},
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
    {"stats", py_stats, METH_NOARGS, "Counters of the native core."},
    {"pending_bytes", py_pending_bytes, METH_NOARGS,
     "Bytes of the record buffers threads hold now (the publisher's look, every 20 ms)."},
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
        rec1_add_constants(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
