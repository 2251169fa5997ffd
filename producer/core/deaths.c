/* Make the death of a tracked list, dict or tuple a real allocator free.
 *
 * memscope records a tracked object's death as the free of its allocation block. CPython 3.11
 * keeps dead lists, dicts and small tuples on per-interpreter free lists for reuse
 * instead of freeing their blocks, so such a tracked object could die without any allocator
 * event. watch(obj) remembers the object's address; those types' deallocators are wrapped so
 * that, when a watched object dies, its free list looks full for the length of that one
 * deallocation: CPython then frees the block, which the tracer records.
 *
 * Everything here runs with the GIL held (watch() is called from Python; deallocators run
 * with the GIL), which protects the table and the saved deallocators. The table's memory
 * comes from libc so the tracer never sees it.
 *
 * Limits: exact objects of these types only (subclasses never use the free lists); a death
 * deferred by CPython's trashcan (more than ~50 nested deallocations) may still be recycled.
 * Floats are not covered: the interpreter's specialized arithmetic frees them without their
 * type's deallocator. Other CPython versions: watch() returns False (their free lists are
 * laid out differently).
 */
#define PY_SSIZE_T_CLEAN
#include <patchlevel.h> /* PY_VERSION_HEX, before Python.h: the core headers need Py_BUILD_CORE */

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define MS_FREELISTS 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#endif

#include <Python.h>

#ifdef MS_FREELISTS
#include "internal/pycore_interp.h"
#endif

#include <stdint.h>
#include <stdlib.h>

#ifdef MS_FREELISTS

/* Open-addressing set of watched object addresses (0 = empty, 1 = deleted). GIL. */
static uintptr_t *ms_table;
static size_t ms_capacity; /* a power of two */
static size_t ms_used;     /* live + deleted slots */
static size_t ms_live;

static destructor ms_list_dealloc;
static destructor ms_dict_dealloc;
static destructor ms_tuple_dealloc;

static size_t ms_slot(uintptr_t key, size_t capacity)
{
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (capacity - 1);
}

static int ms_insert_raw(uintptr_t *table, size_t capacity, uintptr_t key)
{
    size_t i = ms_slot(key, capacity);
    while (table[i] > 1) {
        if (table[i] == key) {
            return 0;
        }
        i = (i + 1) & (capacity - 1);
    }
    table[i] = key;
    return 1;
}

static int ms_grow(void)
{
    size_t capacity = ms_capacity ? ms_capacity * 2 : 256;
    if (ms_live * 4 < ms_capacity) {
        capacity = ms_capacity; /* mostly deleted slots: rehash in place size */
    }
    uintptr_t *table = calloc(capacity, sizeof(uintptr_t));
    if (table == NULL) {
        return -1;
    }
    for (size_t i = 0; i < ms_capacity; i++) {
        if (ms_table[i] > 1) {
            ms_insert_raw(table, capacity, ms_table[i]);
        }
    }
    free(ms_table);
    ms_table = table;
    ms_capacity = capacity;
    ms_used = ms_live;
    return 0;
}

static int ms_add(uintptr_t key)
{
    if ((ms_used + 1) * 2 > ms_capacity && ms_grow() < 0) {
        return -1;
    }
    size_t i = ms_slot(key, ms_capacity);
    size_t tomb = SIZE_MAX;
    while (ms_table[i] != 0) {
        if (ms_table[i] == key) {
            return 0;
        }
        if (ms_table[i] == 1 && tomb == SIZE_MAX) {
            tomb = i;
        }
        i = (i + 1) & (ms_capacity - 1);
    }
    if (tomb != SIZE_MAX) {
        i = tomb;
    } else {
        ms_used++;
    }
    ms_table[i] = key;
    ms_live++;
    return 0;
}

/* Remove key; 1 when it was watched. */
static int ms_take(uintptr_t key)
{
    if (ms_live == 0) {
        return 0;
    }
    size_t i = ms_slot(key, ms_capacity);
    while (ms_table[i] != 0) {
        if (ms_table[i] == key) {
            ms_table[i] = 1;
            ms_live--;
            return 1;
        }
        i = (i + 1) & (ms_capacity - 1);
    }
    return 0;
}

static void ms_list_dealloc_wrapper(PyObject *op)
{
    if (ms_live == 0 || !ms_take((uintptr_t)op)) {
        ms_list_dealloc(op);
        return;
    }
    struct _Py_list_state *state = &PyInterpreterState_Get()->list;
    int saved = state->numfree;
    state->numfree = PyList_MAXFREELIST; /* looks full: list_dealloc frees the block */
    ms_list_dealloc(op);
    state->numfree = saved; /* nothing was pushed while it looked full */
}

static void ms_dict_dealloc_wrapper(PyObject *op)
{
    if (ms_live == 0 || !ms_take((uintptr_t)op)) {
        ms_dict_dealloc(op);
        return;
    }
    struct _Py_dict_state *state = &PyInterpreterState_Get()->dict_state;
    int saved = state->numfree;
    state->numfree = PyDict_MAXFREELIST;
    ms_dict_dealloc(op);
    state->numfree = saved;
}

static void ms_tuple_dealloc_wrapper(PyObject *op)
{
    Py_ssize_t index = Py_SIZE(op) - 1; /* the free list of tuples of this length */
    if (ms_live == 0 || index < 0 || index >= PyTuple_NFREELISTS || !ms_take((uintptr_t)op)) {
        ms_tuple_dealloc(op);
        return;
    }
    struct _Py_tuple_state *state = &PyInterpreterState_Get()->tuple;
    int saved = state->numfree[index];
    state->numfree[index] = PyTuple_MAXFREELIST;
    ms_tuple_dealloc(op);
    state->numfree[index] = saved;
}

static void ms_install(void)
{
    if (ms_tuple_dealloc == NULL) {
        ms_tuple_dealloc = PyTuple_Type.tp_dealloc;
        PyTuple_Type.tp_dealloc = ms_tuple_dealloc_wrapper;
    }

    if (ms_list_dealloc == NULL) {
        ms_list_dealloc = PyList_Type.tp_dealloc;
        PyList_Type.tp_dealloc = ms_list_dealloc_wrapper;
    }
    if (ms_dict_dealloc == NULL) {
        ms_dict_dealloc = PyDict_Type.tp_dealloc;
        PyDict_Type.tp_dealloc = ms_dict_dealloc_wrapper;
    }
}

static PyObject *py_watch(PyObject *self, PyObject *obj)
{
    if (!PyList_CheckExact(obj) && !PyDict_CheckExact(obj) && !PyTuple_CheckExact(obj)) {
        Py_RETURN_FALSE; /* subclasses never go to a free list; other types: not covered */
    }
    if (PyTuple_CheckExact(obj) && PyTuple_GET_SIZE(obj) == 0) {
        Py_RETURN_FALSE; /* the empty tuple never dies */
    }
    ms_install();
    if (ms_add((uintptr_t)obj) < 0) {
        return PyErr_NoMemory();
    }
    Py_RETURN_TRUE;
}

static PyObject *py_watched(PyObject *self, PyObject *noargs)
{
    return PyLong_FromSize_t(ms_live);
}

#else /* other CPython versions */

static PyObject *py_watch(PyObject *self, PyObject *obj)
{
    Py_RETURN_FALSE;
}
static PyObject *py_watched(PyObject *self, PyObject *noargs)
{
    return PyLong_FromLong(0);
}

#endif

static PyMethodDef ms_methods[] = {
    {"watch", py_watch, METH_O,
     "watch(obj) -> bool: make obj's death (exact list, dict, tuple) free its block."},
    {"watched", py_watched, METH_NOARGS, "How many watched objects are alive."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ms_module = {
    PyModuleDef_HEAD_INIT,
    "_deaths",
    "Deaths of tracked objects as allocator frees.",
    -1,
    ms_methods,
};

PyMODINIT_FUNC PyInit__deaths(void)
{
    return PyModule_Create(&ms_module);
}
