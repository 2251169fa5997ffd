/* memscope native mode, tracer side: receives the preloaded shim's malloc/mmap events.
 *
 * The shim (producer/core/preload/ms_preload.c) is found with dlsym(RTLD_DEFAULT) when
 * native_attach() runs; it then calls tr_nm_record() for every intercepted call that is not
 * made from the tracer's own code. tr_nm_record() writes the event into the calling thread's
 * rec1 stream like any PyMem hook, in domain DOMAIN_NATIVE (heap) or DOMAIN_MMAP.
 *
 * No double counting: tr_enter() refuses a thread that is already inside a PyMem/numpy hook
 * (t->busy), so the malloc calls that pymalloc, the RAW domain and numpy's data handler make
 * on behalf of a PyMem_* / numpy call are attributed once, to that Python-level domain; the
 * same holds for pymalloc's arena mmaps. What the native domains show is memory that C code
 * asked libc for directly.
 *
 * Stacks: the Python stack is interned when the calling thread holds the GIL (and is not
 * inside a hook, by the same guard). A thread running C code without the GIL (ctypes calls,
 * extensions that release it) may not touch the GIL-protected stack tree, but its own frames
 * cannot change while it runs C code: they are read (tr_stack_walk_own); the part that equals
 * the thread's cache of its last walk takes that cached node id, and each further frame whose
 * code object the tree already holds a reference to (so it stays alive) becomes a node of
 * this file's own table (tr_nn_*, ids from TR_NM_ID_BASE, a mutex instead of the GIL). The
 * stack is cut at the first frame that cannot be named safely. Below the innermost Python
 * frame every event gets one native frame: the return address in the caller of malloc, also
 * a tr_nn node. Nodes are resolved at drain time, outside any hook, into `stacks`/`frames`
 * rows: Python frames as usual, native ones with dladdr (symbol as function, library path as
 * filename, lineno 0).
 *
 * Findings (double free, invalid free, invalid realloc, blocked by the shim) are kept in a
 * small table (tr_nm_lock) and sent as `ffi` rows (event "native.<finding>") by the drain.
 */
#include "tr_native_mode.h" /* Python.h first: it defines _GNU_SOURCE (dladdr) */

#include <dlfcn.h>
#include <link.h>

#include "preload/ms_preload.h"

/* ------------------------------------------------------------------ findings table */

typedef struct {
    uint64_t tid, tick, addr, ret;
    uint32_t stack, finding;
} tr_nm_finding_t;

#define TR_NM_MAX_FINDINGS 4096
/* Protected by tr_nm_lock (taken by hooks only for a finding, never around an allocation);
 * reinitialized in a forked child. */
static pthread_mutex_t tr_nm_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_nm_finding_t tr_nm_findings[TR_NM_MAX_FINDINGS];
static size_t tr_nm_count;
static uint64_t tr_nm_overflow; /* findings beyond the table since the last drain */

static void tr_nm_note(uint64_t tid, uint64_t tick, unsigned finding, uint64_t addr, uint32_t stack,
                       uint64_t ret)
{
    pthread_mutex_lock(&tr_nm_lock);
    if (tr_nm_count < TR_NM_MAX_FINDINGS) {
        tr_nm_findings[tr_nm_count++] = (tr_nm_finding_t){tid, tick, addr, ret, stack, finding};
    } else {
        tr_nm_overflow++;
    }
    pthread_mutex_unlock(&tr_nm_lock);
}

/* ------------------------------------------------------------------ the shim's callbacks */

/* ------------------------------------------------------------------ native frame nodes */

/* (parent stack id, return address) -> node TR_NM_ID_BASE + index. Protected by tr_nn_lock
 * (taken inside hooks; the memory it grows comes from the shim, untraced, and the shim holds
 * none of its locks meanwhile); reinitialized in a forked child. */
typedef struct {
    const void *code; /* NULL: a native frame (instr = return address); else a code object */
    const void *instr;
    uint32_t parent;
    uint32_t pad;
} tr_nn_t;

static pthread_mutex_t tr_nn_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_nn_t *tr_nn; /* by index */
static uint32_t tr_nn_len, tr_nn_cap;
static uint32_t *tr_nn_index; /* open addressing: index + 1, 0 = empty */
static uint32_t tr_nn_mask;
/* Drain side (GIL): nodes already sent as `stacks` rows; (function, filename) -> frame id. */
static uint32_t tr_nn_emitted;
static PyObject *tr_nn_frames;
static uint32_t tr_nn_next_frame = TR_NM_ID_BASE;
static int tr_nn_stale; /* forked child: drop tr_nn_frames at the next drain */

static inline uint32_t tr_nn_hash(uint32_t parent, const void *code, const void *instr)
{
    uint64_t h = ((uint64_t)(uintptr_t)instr ^ ((uint64_t)parent << 40)) * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)(uintptr_t)code * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h >> 32);
}

static int tr_nn_grow_index(void)
{
    uint32_t cap = tr_nn_mask ? (tr_nn_mask + 1) * 2 : 4096;
    uint32_t *index = tr_raw_calloc(cap, sizeof(uint32_t));
    if (index == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < tr_nn_len; i++) {
        uint32_t h = tr_nn_hash(tr_nn[i].parent, tr_nn[i].code, tr_nn[i].instr) & (cap - 1);
        while (index[h] != 0) {
            h = (h + 1) & (cap - 1);
        }
        index[h] = i + 1;
    }
    tr_raw_free(tr_nn_index);
    tr_nn_index = index;
    tr_nn_mask = cap - 1;
    return 0;
}

/* The node of frame (code, instr) below `parent`; `parent` itself when memory ran out. */
static uint32_t tr_nn_intern(uint32_t parent, const void *code, const void *instr)
{
    uint32_t id = parent;
    pthread_mutex_lock(&tr_nn_lock);
    if (tr_nn_len >= TR_NM_ID_BASE - 1) {
        goto done; /* id space exhausted */
    }
    if ((uint64_t)(tr_nn_len + 1) * 2 > (uint64_t)tr_nn_mask + 1 && tr_nn_grow_index() < 0) {
        goto done;
    }
    uint32_t h = tr_nn_hash(parent, code, instr) & tr_nn_mask;
    for (;; h = (h + 1) & tr_nn_mask) {
        uint32_t slot = tr_nn_index[h];
        if (slot == 0) {
            break;
        }
        const tr_nn_t *nd = &tr_nn[slot - 1];
        if (nd->instr == instr && nd->code == code && nd->parent == parent) {
            id = TR_NM_ID_BASE + slot - 1;
            goto done;
        }
    }
    if (tr_nn_len == tr_nn_cap) {
        uint32_t cap = tr_nn_cap ? tr_nn_cap * 2 : 4096;
        tr_nn_t *grown = tr_raw_alloc((size_t)cap * sizeof(tr_nn_t));
        if (grown == NULL) {
            goto done;
        }
        if (tr_nn != NULL) {
            memcpy(grown, tr_nn, (size_t)tr_nn_len * sizeof(tr_nn_t));
            tr_raw_free(tr_nn);
        }
        tr_nn = grown;
        tr_nn_cap = cap;
    }
    tr_nn[tr_nn_len] = (tr_nn_t){code, instr, parent, 0};
    tr_nn_index[h] = ++tr_nn_len;
    id = TR_NM_ID_BASE + tr_nn_len - 1;
done:
    pthread_mutex_unlock(&tr_nn_lock);
    return id;
}

/* Fork: registered at the first attach, after the tracer's handlers, so these locks are
 * taken before the tracer's and the shim's (the order hooks nest them in). */
static void tr_nm_atfork_prepare(void)
{
    pthread_mutex_lock(&tr_nn_lock);
    pthread_mutex_lock(&tr_nm_lock);
}

static void tr_nm_atfork_parent(void)
{
    pthread_mutex_unlock(&tr_nm_lock);
    pthread_mutex_unlock(&tr_nn_lock);
}

/* The child is a new producer: the parent's findings are the parent's, and every native
 * node and frame must be sent again (Python objects are dropped at the next drain). */
static void tr_nm_atfork_child(void)
{
    pthread_mutex_init(&tr_nm_lock, NULL);
    pthread_mutex_init(&tr_nn_lock, NULL);
    tr_nm_count = 0;
    tr_nm_overflow = 0;
    tr_nn_emitted = 0;
    tr_nn_next_frame = TR_NM_ID_BASE;
    tr_nn_stale = 1;
}

/* Whether the stack tree holds a reference to `code` (so it outlives this event): the
 * thread's cached walk names only code objects of tree nodes. */
static int tr_nm_pinned(const tr_thread_t *t, const void *code)
{
    for (int i = 0; i < t->cache_depth; i++) {
        if (t->cache_code[i] == code) {
            return 1;
        }
    }
    return 0;
}

/* The calling thread's Python stack while it does not hold the GIL (see the top). */
static uint32_t tr_nm_stack_nogil(tr_thread_t *t)
{
    const void *code[TR_MAX_DEPTH], *instr[TR_MAX_DEPTH];
    int depth = tr_stack_walk_own(code, instr);
    uint64_t hash = 0x9E3779B97F4A7C15ull ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        hash = (hash ^ (uint64_t)(uintptr_t)code[i]) * 0xff51afd7ed558ccdull;
        hash = (hash ^ (uint64_t)(uintptr_t)instr[i]) * 0xc4ceb9fe1a85ec53ull;
        hash ^= hash >> 29;
    }
    if (hash == t->nm_walk_hash && hash != 0) {
        return t->nm_walk_id; /* the same frames as the thread's previous GIL-free event */
    }
    int same = 0, limit = depth < t->cache_depth ? depth : t->cache_depth;
    while (same < limit && t->cache_code[same] == code[same] &&
           t->cache_instr[same] == instr[same]) {
        same++;
    }
    uint32_t id = same ? t->cache_id[same - 1] : 0;
    for (int i = same; i < depth && tr_nm_pinned(t, code[i]); i++) {
        uint32_t child = tr_nn_intern(id, code[i], instr[i]);
        if (child == id) {
            break;
        }
        id = child;
    }
    t->nm_walk_hash = hash;
    t->nm_walk_id = id;
    return id;
}

/* Code whose allocations are memscope's own, never the program's: this extension (its
 * buffers, maps and tables) and memscope's transport (pyzmq's extension modules and libzmq,
 * whose I/O threads the publisher cannot mark ignored). A call whose return address lies in
 * one of these ranges is not recorded; checked before anything else, so attaching a new
 * thread's state (which maps memory) cannot recurse into itself. The ranges are appended at
 * attach and at each drain (GIL held) and published by a release store of the count; hooks
 * read them lock-free. A program that uses zmq itself does not see libzmq's allocations. */
#define TR_NM_MAX_RANGES 16
static uintptr_t tr_nm_range_lo[TR_NM_MAX_RANGES], tr_nm_range_hi[TR_NM_MAX_RANGES];
static int tr_nm_ranges;          /* atomic */
static uintptr_t tr_nm_self_base; /* this extension's load address (GIL) */

static inline int tr_nm_ignored_caller(uint64_t ret)
{
    int n = __atomic_load_n(&tr_nm_ranges, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) {
        if (ret - tr_nm_range_lo[i] < tr_nm_range_hi[i] - tr_nm_range_lo[i]) {
            return 1;
        }
    }
    return 0;
}

static int tr_nm_is_own(const struct dl_phdr_info *info)
{
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    return (uintptr_t)info->dlpi_addr == tr_nm_self_base || strstr(name, "/zmq/") != NULL ||
           strstr(name, "libzmq") != NULL || strstr(name, "pyzmq") != NULL;
}

static int tr_nm_add_range(struct dl_phdr_info *info, size_t size, void *unused)
{
    (void)size;
    (void)unused;
    if (!tr_nm_is_own(info)) {
        return 0;
    }
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
            lo = start < lo ? start : lo;
            hi = start + ph->p_memsz > hi ? start + ph->p_memsz : hi;
        }
    }
    int n = __atomic_load_n(&tr_nm_ranges, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++) {
        if (tr_nm_range_lo[i] == lo) {
            return 0; /* known */
        }
    }
    if (hi > lo && n < TR_NM_MAX_RANGES) {
        tr_nm_range_lo[n] = lo;
        tr_nm_range_hi[n] = hi;
        __atomic_store_n(&tr_nm_ranges, n + 1, __ATOMIC_RELEASE);
    }
    return 0;
}

/* GIL held: add the ranges of memscope's own code loaded since the last call. */
static void tr_nm_refresh_ranges(void)
{
    if (tr_nm_self_base == 0) {
        Dl_info info;
        if (dladdr((void *)&tr_nm_refresh_ranges, &info) == 0) {
            return;
        }
        tr_nm_self_base = (uintptr_t)info.dli_fbase;
    }
    dl_iterate_phdr(tr_nm_add_range, NULL);
}

static uint64_t tr_nm_tick(void)
{
    return tr_tick();
}

/* The stack of a native event: the Python stack (interned with the GIL, read without it)
 * plus the native frame of `ret`. */
static uint32_t tr_nm_stack(tr_thread_t *t, uint64_t ret)
{
    uint32_t stack = tr_stack_gil_held() ? tr_stack_current(t) : tr_nm_stack_nogil(t);
    if (ret != 0 && ret == t->nm_ret && stack == t->nm_ret_parent && t->nm_ret_id) {
        return t->nm_ret_id; /* the same call site as the thread's previous event */
    }
    if (ret != 0) {
        t->nm_ret = ret;
        t->nm_ret_parent = stack;
        stack = t->nm_ret_id = tr_nn_intern(stack, NULL, (const void *)(uintptr_t)ret);
    }
    return stack;
}

/* One event from the shim. Recorded through the tracer's own tr_record_* so that the modes,
 * the timestamp rules and the ignored-thread rules are the same as for the PyMem hooks; the
 * stack computed here is handed over with t->nm_preset. */
static void tr_nm_record(unsigned kind, unsigned domain, uint64_t addr, uint64_t old, uint64_t size,
                         uint64_t ret, unsigned finding, uint64_t tick)
{
    if (tr_nm_ignored_caller(ret)) {
        return; /* memscope's own allocations */
    }
    /* tr_enter for frees too: an ignored thread's native frees are of blocks its unrecorded
     * allocations made (its transport's buffers), so recording them would only add frees of
     * never-seen blocks */
    tr_thread_t *t = tr_enter();
    if (t == NULL) {
        return;
    }
    if (kind == TR_FREE) {
        if (finding != 0) {
            tr_nm_note(t->tid, tr_tick(), finding, addr, tr_nm_stack(t, ret), ret);
        }
        tr_record_free(t, domain, (void *)(uintptr_t)addr);
        t->busy = 0;
        return;
    }
    t->nm_stack = tr_nm_stack(t, ret);
    t->nm_preset = 1;
    if (kind == TR_REALLOC) {
        /* (gil 0: the stack is preset, and native mode reads the clock for every event) */
        tr_record_realloc(t, domain, 0, (void *)(uintptr_t)addr, (void *)(uintptr_t)old, size,
                          tick != 0 ? tick : tr_tick());
    } else {
        tr_record_alloc(t, kind, domain, (void *)(uintptr_t)addr, size);
    }
    t->nm_preset = 0;
    t->busy = 0;
}

static const ms_ops_t tr_nm_ops = {MS_ABI, tr_nm_tick, tr_nm_record};

/* ------------------------------------------------------------------ attach / detach */

/* Resolved by the first native_attach (GIL); NULL when the shim is not preloaded. */
static ms_attach_fn tr_nm_attach_fn;
static ms_detach_fn tr_nm_detach_fn;
static ms_stats_fn tr_nm_stats_fn;
static ms_patch_fn tr_nm_patch_fn;
static int tr_nm_late;         /* GIL: the shim was loaded late and patches GOTs */
static int tr_nm_attached;     /* GIL */
static int tr_nm_atfork_ready; /* GIL */

/* The shim's functions: from the global scope when it is preloaded, else from `handle`. */
static int tr_nm_find_shim(void *handle)
{
    if (tr_nm_attach_fn != NULL) {
        return 1;
    }
    void *scope = handle != NULL ? handle : RTLD_DEFAULT;
    *(void **)&tr_nm_attach_fn = dlsym(scope, "memscope_native_attach");
    *(void **)&tr_nm_detach_fn = dlsym(scope, "memscope_native_detach");
    *(void **)&tr_nm_stats_fn = dlsym(scope, "memscope_native_stats");
    *(void **)&tr_nm_patch_fn = dlsym(scope, "memscope_native_patch");
    if (tr_nm_attach_fn == NULL || tr_nm_detach_fn == NULL || tr_nm_stats_fn == NULL ||
        tr_nm_patch_fn == NULL) {
        tr_nm_attach_fn = NULL;
        return 0;
    }
    return 1;
}

/* Late mode: load the shim now and patch the loaded objects' GOTs (see ms_preload.c). */
static int tr_nm_load_late(const char *path)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        PyErr_Format(PyExc_RuntimeError, "cannot load memscope's allocator shim %s: %s", path,
                     why != NULL ? why : "unknown error");
        return -1;
    }
    if (!tr_nm_find_shim(handle)) {
        PyErr_Format(PyExc_RuntimeError, "%s is not memscope's allocator shim", path);
        return -1;
    }
    return 0;
}

PyObject *tr_nm_py_attach(PyObject *self, PyObject *args)
{
    const char *path = NULL;
    if (!PyArg_ParseTuple(args, "|z", &path)) {
        return NULL;
    }
    int late = 0;
    if (!tr_nm_find_shim(NULL)) {
        if (path == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "native mode needs memscope's allocator shim preloaded into this "
                            "process: run the program with `memscope run --native`, or start "
                            "it with LD_PRELOAD set to `python -m memscope.producer.native_mode "
                            "--library`");
            return NULL;
        }
        if (tr_nm_load_late(path) < 0) {
            return NULL;
        }
        late = 1;
    }
    tr_nm_refresh_ranges();
    if (tr_nm_attach_fn(&tr_nm_ops) != MS_ABI) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the loaded memscope shim is from another memscope version");
        return NULL;
    }
    if (!tr_nm_atfork_ready) {
        if (pthread_atfork(tr_nm_atfork_prepare, tr_nm_atfork_parent, tr_nm_atfork_child) != 0) {
            tr_nm_detach_fn();
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return NULL;
        }
        tr_nm_atfork_ready = 1;
    }
    if (late && tr_nm_patch_fn() < 0) {
        tr_nm_detach_fn();
        PyErr_SetString(PyExc_RuntimeError,
                        "native mode without the preloaded shim is not supported on this "
                        "architecture: start the program with `memscope run --native`");
        return NULL;
    }
    tr_nm_attached = 1;
    tr_nm_late = tr_nm_late || late;
    Py_RETURN_NONE;
}

PyObject *tr_nm_py_detach(PyObject *self, PyObject *noargs)
{
    if (tr_nm_attached) {
        tr_nm_detach_fn();
        tr_nm_attached = 0;
    }
    Py_RETURN_NONE;
}

PyObject *tr_nm_py_stats(PyObject *self, PyObject *noargs)
{
    if (!tr_nm_find_shim(NULL)) {
        Py_RETURN_NONE;
    }
    ms_stats_t s = {0};
    tr_nm_stats_fn(&s);
    return Py_BuildValue(
        "{s:O,s:O,s:K,s:K,s:K,s:K,s:K,s:K}", "attached", tr_nm_attached ? Py_True : Py_False,
        "late", tr_nm_late ? Py_True : Py_False, "live_blocks", (unsigned long long)s.live_blocks,
        "double_frees", (unsigned long long)s.double_frees, "invalid_frees",
        (unsigned long long)s.invalid_frees, "invalid_reallocs",
        (unsigned long long)s.invalid_reallocs, "untracked", (unsigned long long)s.untracked,
        "boot_bytes", (unsigned long long)s.boot_bytes);
}

/* ------------------------------------------------------------------ drain side */

static PyObject *tr_nm_hex(uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "0x%llx", (unsigned long long)value);
    return PyUnicode_FromString(text);
}

static int tr_nm_describe(const void *ret, PyObject **function, PyObject **filename)
{
    Dl_info info;
    /* ret - 1: the call instruction itself (a call may be the last one of a function) */
    if (dladdr((const char *)ret - 1, &info) != 0 && info.dli_fname != NULL) {
        *filename = PyUnicode_DecodeFSDefault(info.dli_fname);
        if (info.dli_sname != NULL) {
            *function = PyUnicode_FromString(info.dli_sname);
        } else {
            *function = tr_nm_hex((uintptr_t)ret - (uintptr_t)info.dli_fbase);
        }
    } else {
        *filename = PyUnicode_FromString("<native>");
        *function = tr_nm_hex((uintptr_t)ret);
    }
    if (*function == NULL || *filename == NULL) {
        Py_CLEAR(*function);
        Py_CLEAR(*filename);
        return -1;
    }
    return 0;
}

static const char *tr_nm_event_name(uint32_t finding)
{
    switch (finding) {
    case MS_FINDING_DOUBLE_FREE:
        return "native.double_free";
    case MS_FINDING_INVALID_FREE:
        return "native.invalid_free";
    default:
        return "native.invalid_realloc";
    }
}

static PyObject *tr_nm_details(PyObject *dumps, const tr_nm_finding_t *f)
{
    PyObject *function = NULL, *filename = NULL;
    if (f->ret != 0 && tr_nm_describe((const void *)(uintptr_t)f->ret, &function, &filename) < 0) {
        return NULL;
    }
    PyObject *details =
        Py_BuildValue("{s:N,s:O,s:N,s:N}", "address", tr_nm_hex(f->addr), "blocked", Py_True,
                      "caller", function != NULL ? function : Py_NewRef(Py_None), "library",
                      filename != NULL ? filename : Py_NewRef(Py_None));
    if (details == NULL) {
        return NULL;
    }
    PyObject *text = PyObject_CallFunction(dumps, "O", details);
    Py_DECREF(details);
    return text;
}

/* function, filename and line of a node; new references. */
static int tr_nn_describe(const tr_nn_t *nd, PyObject **function, PyObject **filename, int *lineno)
{
    if (nd->code == NULL) {
        *lineno = 0;
        return tr_nm_describe(nd->instr, function, filename);
    }
    PyObject *code = (PyObject *)nd->code; /* alive: the stack tree holds it */
    if (!PyCode_Check(code)) {
        *lineno = -1;
        *function = PyUnicode_FromString("<unknown>");
        *filename = PyUnicode_FromString("<unknown>");
    } else {
        *lineno = tr_stack_lineno(code, nd->instr);
        *function = Py_NewRef(((PyCodeObject *)code)->co_qualname);
        *filename = Py_NewRef(((PyCodeObject *)code)->co_filename);
    }
    if (*function == NULL || *filename == NULL) {
        Py_CLEAR(*function);
        Py_CLEAR(*filename);
        return -1;
    }
    return 0;
}

/* frame id of a node, adding a `frames` row when its (function, file, line) is new. */
static int64_t tr_nn_frame_id(PyObject *rare, const tr_nn_t *nd)
{
    PyObject *function, *filename;
    int lineno;
    if (tr_nn_describe(nd, &function, &filename, &lineno) < 0) {
        return -1;
    }
    PyObject *key = Py_BuildValue("(OOi)", function, filename, lineno);
    PyObject *known = key ? PyDict_GetItemWithError(tr_nn_frames, key) : NULL;
    if (known != NULL || key == NULL || PyErr_Occurred()) {
        Py_XDECREF(key);
        Py_DECREF(function);
        Py_DECREF(filename);
        return known != NULL ? (int64_t)PyLong_AsUnsignedLong(known) : -1;
    }
    uint32_t fid = tr_nn_next_frame++;
    PyObject *value = PyLong_FromUnsignedLong(fid);
    int rc = value == NULL ? -1 : PyDict_SetItem(tr_nn_frames, key, value);
    Py_XDECREF(value);
    Py_DECREF(key);
    static const char *const names[] = {"frame_id", "function", "filename", "lineno"};
    PyObject *values[] = {PyLong_FromUnsignedLong(fid), function, filename,
                          PyLong_FromLong(lineno)};
    if (rc < 0) {
        for (int i = 0; i < 4; i++) {
            Py_XDECREF(values[i]);
        }
        return -1;
    }
    return tr_append_row(rare, "frames", names, values, 4) < 0 ? -1 : (int64_t)fid;
}

/* `stacks` rows (and new `frames`) for the native nodes made since the last drain. */
static int tr_nn_emit(PyObject *rare)
{
    if (tr_nn_stale) {
        Py_CLEAR(tr_nn_frames);
        tr_nn_stale = 0;
    }
    if (tr_nn_frames == NULL && (tr_nn_frames = PyDict_New()) == NULL) {
        return -1;
    }
    static const char *const names[] = {"stack_id", "parent_id", "frame_id"};
    for (;;) {
        pthread_mutex_lock(&tr_nn_lock);
        uint32_t index = tr_nn_emitted;
        int more = index < tr_nn_len;
        tr_nn_t node = more ? tr_nn[index] : (tr_nn_t){0};
        pthread_mutex_unlock(&tr_nn_lock);
        if (!more) {
            return 0;
        }
        int64_t fid = tr_nn_frame_id(rare, &node);
        if (fid < 0) {
            return -1;
        }
        PyObject *values[] = {PyLong_FromUnsignedLong(TR_NM_ID_BASE + index),
                              PyLong_FromUnsignedLong(node.parent),
                              PyLong_FromUnsignedLong((uint32_t)fid)};
        if (tr_append_row(rare, "stacks", names, values, 3) < 0) {
            return -1;
        }
        tr_nn_emitted = index + 1;
    }
}

int tr_nm_emit(PyObject *rare)
{
    if (tr_nm_attached) {
        tr_nm_refresh_ranges(); /* memscope's transport may have been loaded since */
    }
    if (tr_nn_emit(rare) < 0) {
        return -1;
    }
    pthread_mutex_lock(&tr_nm_lock);
    size_t n = tr_nm_count;
    tr_nm_finding_t *copy = n ? tr_raw_alloc(n * sizeof(tr_nm_finding_t)) : NULL;
    if (copy != NULL) {
        memcpy(copy, tr_nm_findings, n * sizeof(tr_nm_finding_t));
        tr_nm_count = 0;
    }
    pthread_mutex_unlock(&tr_nm_lock);
    if (copy == NULL) {
        return 0; /* nothing (or no memory: the findings wait for the next drain) */
    }
    int rc = -1;
    PyObject *json = PyImport_ImportModule("json");
    PyObject *dumps = json ? PyObject_GetAttrString(json, "dumps") : NULL;
    Py_XDECREF(json);
    if (dumps == NULL) {
        goto done;
    }
    tr_clock_t clock;
    tr_clock_now(&clock);
    static const char *const names[] = {"tid", "ts_ns", "event", "details", "stack_id"};
    for (size_t i = 0; i < n; i++) {
        const tr_nm_finding_t *f = &copy[i];
        PyObject *values[] = {PyLong_FromUnsignedLongLong(f->tid),
                              PyLong_FromLongLong(tr_tick_to_ns(&clock, f->tick)),
                              PyUnicode_FromString(tr_nm_event_name(f->finding)),
                              tr_nm_details(dumps, f), PyLong_FromUnsignedLong(f->stack)};
        if (tr_append_row(rare, "ffi", names, values, 5) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    Py_XDECREF(dumps);
    tr_raw_free(copy);
    return rc;
}
