/* numpy array data: wrap numpy's default data-memory handler.
 *
 * numpy keeps the handler of new arrays in a ContextVar whose default value is the capsule
 * PyDataMem_DefaultHandler; PyDataMem_SetHandler() would only change the calling context,
 * so threads and contexts created later would still allocate untraced. Instead we patch the
 * function pointers inside the default handler itself (numpy's static, writable
 * PyDataMem_Handler), chaining to the saved ones: every context that uses the default
 * handler is traced, and arrays keep freeing through the same handler object. A program
 * that installs its own handler is not traced here (its memory is its own).
 *
 * Layouts below are numpy's public C-API (numpy >= 1.22): the handler struct of
 * numpy/ndarraytypes.h and slot 306 of the _ARRAY_API table (PyDataMem_DefaultHandler).
 */
#include "tr_core.h"
#include "tr_record.h"

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr, size_t size);
} tr_np_allocator_t;

typedef struct {
    char name[127];
    uint8_t version;
    tr_np_allocator_t allocator;
} tr_np_handler_t;

#define TR_NP_DEFAULT_HANDLER_SLOT 306

/* Set by tr_numpy_install with the GIL held; tr_np_orig is never cleared so that a call
 * still running after uninstall keeps working. */
static tr_np_handler_t *tr_np_handler;
static tr_np_allocator_t tr_np_orig;

static void *tr_np_malloc(void *ctx, size_t size)
{
    tr_thread_t *t = tr_enter();
    void *p = tr_np_orig.malloc(ctx, size);
    if (t != NULL) {
        if (p != NULL) {
            tr_record_alloc(t, TR_ALLOC, TR_NUMPY, p, size);
        }
        t->busy = 0;
    }
    return p;
}

static void *tr_np_calloc(void *ctx, size_t nelem, size_t elsize)
{
    tr_thread_t *t = tr_enter();
    void *p = tr_np_orig.calloc(ctx, nelem, elsize);
    if (t != NULL) {
        if (p != NULL) {
            tr_record_alloc(t, TR_CALLOC, TR_NUMPY, p, nelem * elsize);
        }
        t->busy = 0;
    }
    return p;
}

static void *tr_np_realloc(void *ctx, void *ptr, size_t size)
{
    tr_thread_t *t = tr_enter();
    /* a fresh reading, counted when without the GIL (see tr_stamp_free) */
    int gil = t != NULL && tr_event_gil(TR_NUMPY);
    uint64_t tick = t != NULL ? tr_stamp_free(t, gil) : 0;
    void *p = tr_np_orig.realloc(ctx, ptr, size);
    if (t != NULL) {
        if (p != NULL && ptr != NULL) {
            tr_record_realloc(t, TR_NUMPY, gil, p, ptr, size, tick);
        } else if (p != NULL) {
            tr_record_alloc(t, TR_ALLOC, TR_NUMPY, p, size);
        }
        t->busy = 0;
    }
    return p;
}

static void tr_np_free(void *ctx, void *ptr, size_t size)
{
    tr_thread_t *t = ptr != NULL ? tr_enter() : NULL;
    if (t == NULL && ptr != NULL && (t = tr_enter_own()) != NULL && t->ignored != TR_IGNORED) {
        t->busy = 0; /* paused or draining: memscope's own work, not recorded */
        t = NULL;
    }
    if (t != NULL) { /* the publisher's frees of numpy blocks are the program's blocks */
        tr_record_free(t, TR_NUMPY, ptr);
    }
    tr_np_orig.free(ctx, ptr, size);
    if (t != NULL) {
        t->busy = 0;
    }
}

static PyObject *tr_np_api_module(void)
{
    PyObject *mod = PyImport_ImportModule("numpy._core._multiarray_umath");
    if (mod == NULL && PyErr_ExceptionMatches(PyExc_ImportError)) {
        PyErr_Clear();
        mod = PyImport_ImportModule("numpy.core._multiarray_umath");
    }
    return mod;
}

int tr_numpy_install(void)
{
    if (tr_np_handler != NULL) {
        return 1;
    }
    PyObject *mod = tr_np_api_module();
    if (mod == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ImportError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    PyObject *api_capsule = PyObject_GetAttrString(mod, "_ARRAY_API");
    Py_DECREF(mod);
    if (api_capsule == NULL) {
        return -1;
    }
    void **api = PyCapsule_GetPointer(api_capsule, NULL);
    Py_DECREF(api_capsule);
    if (api == NULL) {
        return -1;
    }
    PyObject *capsule = *(PyObject **)api[TR_NP_DEFAULT_HANDLER_SLOT];
    if (capsule == NULL || !PyCapsule_IsValid(capsule, "mem_handler")) {
        PyErr_SetString(PyExc_RuntimeError, "numpy's default data-memory handler not found");
        return -1;
    }
    tr_np_handler_t *h = PyCapsule_GetPointer(capsule, "mem_handler");
    if (h->version != 1 || strcmp(h->name, "default_allocator") != 0) {
        PyErr_Format(PyExc_RuntimeError, "unexpected numpy data-memory handler %.127s v%d", h->name,
                     h->version);
        return -1;
    }
    tr_np_orig = h->allocator;
    tr_np_handler = h;
    h->allocator.malloc = tr_np_malloc;
    h->allocator.calloc = tr_np_calloc;
    h->allocator.realloc = tr_np_realloc;
    h->allocator.free = tr_np_free;
    return 1;
}

void tr_numpy_uninstall(void)
{
    if (tr_np_handler == NULL) {
        return;
    }
    tr_np_handler->allocator.malloc = tr_np_orig.malloc;
    tr_np_handler->allocator.calloc = tr_np_orig.calloc;
    tr_np_handler->allocator.realloc = tr_np_orig.realloc;
    tr_np_handler->allocator.free = tr_np_orig.free;
    tr_np_handler = NULL;
}
