/* Interned Python stacks: a prefix tree of (code object, instruction) nodes.
 *
 * A hook that holds the GIL walks the interpreter's frame chain (no frame objects are
 * created, nothing is called), compares the walk with the thread's previous one (outermost
 * frame first) and interns only the frames below the common prefix. Node ids start at 1;
 * 0 is the empty stack. Each node keeps a strong reference to its code object so that the
 * drain can later resolve the instruction to a line.
 *
 * Everything in this file runs with the GIL held: the tree, its hash index and the frame
 * table are protected by the GIL. Their memory comes from the saved raw allocator, so
 * growing them never re-enters a hook.
 *
 * Version guards: see tr_frame.h; 3.12+ C-stack shim frames (FRAME_OWNED_BY_CSTACK) are
 * skipped.
 */
#include "tr_frame.h"

typedef struct {
    uint32_t parent;
    uint32_t frame_id; /* assigned when the node is first emitted; 0 before */
    PyObject *code;    /* strong reference */
    const void *instr;
} tr_node_t;

/* GIL-protected tree: nodes[1 .. n_nodes-1]; index maps (parent, code, instr) -> node. */
static tr_node_t *tr_nodes;
static uint32_t tr_n_nodes = 1, tr_cap_nodes;
static uint32_t *tr_index; /* open addressing, 0 = empty */
static uint32_t tr_index_mask;
/* First node not yet sent as a `stacks` row (GIL). */
static uint32_t tr_emitted_nodes = 1;
/* (code, lineno) -> frame_id, and the next frame id (GIL; reset in a forked child). */
static PyObject *tr_frame_ids;
static uint32_t tr_next_frame_id = 1;
/* Set in a forked child (where no Python object may be touched): drop tr_frame_ids at the
 * next emit. */
static int tr_frame_ids_stale;

static inline uint64_t tr_hash3(uint32_t parent, const void *code, const void *instr)
{
    uint64_t h = (uint64_t)(uintptr_t)code * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)(uintptr_t)instr * 0xC2B2AE3D27D4EB4Full;
    h ^= (uint64_t)parent * 0x165667B19E3779F9ull;
    return h ^ (h >> 29);
}

static int tr_index_grow(void)
{
    uint32_t cap = tr_index_mask ? (tr_index_mask + 1) * 2 : 4096;
    uint32_t *index = tr_raw_calloc(cap, sizeof(uint32_t));
    if (index == NULL) {
        return -1;
    }
    for (uint32_t id = 1; id < tr_n_nodes; id++) {
        tr_node_t *nd = &tr_nodes[id];
        uint64_t h = tr_hash3(nd->parent, nd->code, nd->instr) & (cap - 1);
        while (index[h] != 0) {
            h = (h + 1) & (cap - 1);
        }
        index[h] = id;
    }
    tr_raw_free(tr_index);
    tr_index = index;
    tr_index_mask = cap - 1;
    return 0;
}

/* Returns the node id, or 0 when memory ran out (the stack is then cut here). */
static uint32_t tr_intern(uint32_t parent, PyObject *code, const void *instr)
{
    if ((uint64_t)tr_n_nodes * 2 >= (uint64_t)tr_index_mask + 1 && tr_index_grow() < 0) {
        return 0;
    }
    uint64_t h = tr_hash3(parent, code, instr) & tr_index_mask;
    for (;;) {
        uint32_t id = tr_index[h];
        if (id == 0) {
            break;
        }
        tr_node_t *nd = &tr_nodes[id];
        if (nd->parent == parent && nd->code == code && nd->instr == instr) {
            return id;
        }
        h = (h + 1) & tr_index_mask;
    }
    if (tr_n_nodes >= tr_cap_nodes) {
        uint32_t cap = tr_cap_nodes ? tr_cap_nodes * 2 : 4096;
        tr_node_t *nodes = tr_raw_alloc((size_t)cap * sizeof(tr_node_t));
        if (nodes == NULL) {
            return 0;
        }
        if (tr_nodes != NULL) {
            memcpy(nodes, tr_nodes, (size_t)tr_n_nodes * sizeof(tr_node_t));
            tr_raw_free(tr_nodes);
        }
        tr_nodes = nodes;
        tr_cap_nodes = cap;
    }
    uint32_t id = tr_n_nodes++;
    Py_INCREF(code);
    tr_nodes[id] = (tr_node_t){parent, 0, code, instr};
    tr_index[h] = id;
    return id;
}

int tr_stack_gil_held(void)
{
    return PyGILState_Check();
}

/* Frames that are not (yet) Python code being run: shims of C calls (3.12+) and a frame
 * still being set up. On 3.11 only the innermost frame can be incomplete (a frame runs
 * RESUME before it can call anything), so the walk checks the others for nothing. */
static inline int tr_frame_skip(_PyInterpreterFrame *f, int innermost)
{
#if PY_VERSION_HEX >= 0x030C0000
    (void)innermost;
    if (f->owner == FRAME_OWNED_BY_CSTACK) {
        return 1;
    }
    return _PyFrame_IsIncomplete(f);
#else
    return innermost && _PyFrame_IsIncomplete(f);
#endif
}

/* Interns the walk in t->walk_instr[0 .. depth) (innermost first) whose outermost `same`
 * frames match the thread's cached walk, updates the cache and returns the stack id.
 * t->walk_code holds the frames' code objects, or (`frames`) the frames themselves. */
static uint32_t tr_stack_extend(tr_thread_t *t, int same, int depth, const void *const *codes,
                                const void *const *instrs, int frames)
{
    uint32_t id = same ? t->cache_id[same - 1] : 0;
    for (int i = same; i < depth; i++) {
        const void *at = codes[depth - 1 - i];
        PyObject *code = frames ? TR_FRAME_CODE((_PyInterpreterFrame *)at) : (PyObject *)at;
        const void *instr = instrs[depth - 1 - i];
        /* an instruction pointer names its code object (nodes keep their code alive), so
         * (parent, instr) identifies the node */
        unsigned slot = (unsigned)((((uintptr_t)instr >> 1) ^ (id * 0x9E3779B1u)) & 255);
        uint32_t child;
        if (t->leaf[slot].instr == instr && t->leaf[slot].parent == id) {
            child = t->leaf[slot].id;
        } else {
            child = tr_intern(id, code, instr);
            if (child == 0) {
                t->cache_depth = i;
                return id;
            }
            t->leaf[slot].instr = instr;
            t->leaf[slot].parent = id;
            t->leaf[slot].id = child;
        }
        id = child;
        t->cache_code[i] = code;
        t->cache_instr[i] = instr;
        t->cache_id[i] = id;
    }
    t->cache_depth = depth;
    return id;
}

#if PY_VERSION_HEX < 0x030C0000
/* The hooks' walk on 3.11: only the instruction pointers are compared with the cached walk
 * (equal pointers mean equal code objects: the cached ones are kept alive by their nodes),
 * code objects are read only for frames that are interned, and the innermost frame is
 * checked for being still set up only when the cache does not vouch for it (a cached
 * frame was complete, and a frame still being set up is at no instruction of its code). */
uint32_t tr_stack_current(tr_thread_t *t)
{
    PyThreadState *ts = tr_tstate();
    if (ts == NULL || ts->cframe == NULL) {
        return 0;
    }
    const void **frames = t->walk_code, **instrs = t->walk_instr;
    int depth = 0;
    for (_PyInterpreterFrame *f = ts->cframe->current_frame; f != NULL && depth < TR_MAX_DEPTH;
         f = f->previous) {
        frames[depth] = f;
        instrs[depth] = f->prev_instr;
        depth++;
    }
    int same = 0, limit = depth < t->cache_depth ? depth : t->cache_depth;
    while (same < limit && t->cache_instr[same] == instrs[depth - 1 - same]) {
        same++;
    }
    if (same < depth && _PyFrame_IsIncomplete((_PyInterpreterFrame *)frames[0])) {
        frames++; /* drop the innermost frame: outer positions stay where they were */
        instrs++;
        depth--;
        if (same > depth) {
            same = depth;
        }
    }
    if (depth == 0) {
        return 0;
    }
    return tr_stack_extend(t, same, depth, frames, instrs, 1);
}
#else
uint32_t tr_stack_current(tr_thread_t *t)
{
    return tr_stack_current_skip(t, 0);
}
#endif

uint32_t tr_stack_current_skip(tr_thread_t *t, int skip)
{
    PyThreadState *ts = tr_tstate();
    if (ts == NULL) {
        return 0;
    }
    /* Walk innermost -> outermost. */
    int depth = 0;
#if PY_VERSION_HEX < 0x030D0000
    if (ts->cframe == NULL) {
        return 0;
    }
#endif
    int innermost = 1;
    for (_PyInterpreterFrame *f = TR_TSTATE_FRAME(ts); f != NULL && depth < TR_MAX_DEPTH;
         f = f->previous) {
        if (tr_frame_skip(f, innermost)) {
            innermost = 0;
            continue;
        }
        innermost = 0;
        if (skip > 0) {
            skip--;
            continue;
        }
        t->walk_code[depth] = TR_FRAME_CODE(f);
        t->walk_instr[depth] = TR_FRAME_INSTR(f);
        depth++;
    }
    if (depth == 0) {
        return 0;
    }
    /* Common prefix with the cached previous walk (outermost first). */
    int same = 0, limit = depth < t->cache_depth ? depth : t->cache_depth;
    while (same < limit && t->cache_code[same] == t->walk_code[depth - 1 - same] &&
           t->cache_instr[same] == t->walk_instr[depth - 1 - same]) {
        same++;
    }
    return tr_stack_extend(t, same, depth, t->walk_code, t->walk_instr, 0);
}

uint32_t tr_stack_count(void)
{
    return tr_n_nodes - 1;
}

/* native mode hook (tr_native_mode.c): the calling thread's own frames, read while it does
 * NOT hold the GIL (a C call that released it, e.g. ctypes): they cannot change while it runs
 * C code. Fills code/instr outermost first (the innermost TR_MAX_DEPTH frames, like
 * tr_stack_current); returns the depth. Nothing is interned or referenced here. */
int tr_stack_walk_own(const void **code, const void **instr)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (ts == NULL) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (ts->cframe == NULL) {
        return 0;
    }
#endif
    const void *c[TR_MAX_DEPTH], *ip[TR_MAX_DEPTH];
    int depth = 0, innermost = 1;
    for (_PyInterpreterFrame *f = TR_TSTATE_FRAME(ts); f != NULL && depth < TR_MAX_DEPTH;
         f = f->previous, innermost = 0) {
        if (!tr_frame_skip(f, innermost)) {
            c[depth] = TR_FRAME_CODE(f);
            ip[depth] = TR_FRAME_INSTR(f);
            depth++;
        }
    }
    for (int i = 0; i < depth; i++) {
        code[i] = c[depth - 1 - i];
        instr[i] = ip[depth - 1 - i];
    }
    return depth;
}

void tr_stack_reset_emitted(void)
{
    tr_emitted_nodes = 1;
    tr_next_frame_id = 1;
    tr_frame_ids_stale = 1;
    for (uint32_t id = 1; id < tr_n_nodes; id++) {
        tr_nodes[id].frame_id = 0;
    }
}

static int tr_instr_lineno(PyObject *code, const void *instr)
{
    PyCodeObject *co = (PyCodeObject *)code;
    if (!PyCode_Check(code)) {
        return -1;
    }
    const _Py_CODEUNIT *first = _PyCode_CODE(co);
    ptrdiff_t units = (const _Py_CODEUNIT *)instr - first;
    if (units < 0) {
        units = 0;
    }
    return PyCode_Addr2Line(co, (int)(units * (ptrdiff_t)sizeof(_Py_CODEUNIT)));
}

/* frame id of a node, adding a `frames` row when its (code, lineno) is new. */
static int64_t tr_frame_id_of(PyObject *rare, tr_node_t *nd)
{
    int lineno = tr_instr_lineno(nd->code, nd->instr);
    PyObject *key = Py_BuildValue("(Oi)", nd->code, lineno);
    if (key == NULL) {
        return -1;
    }
    PyObject *known = PyDict_GetItemWithError(tr_frame_ids, key);
    if (known != NULL) {
        Py_DECREF(key);
        return (int64_t)PyLong_AsUnsignedLong(known);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    }
    uint32_t fid = tr_next_frame_id++;
    PyObject *value = PyLong_FromUnsignedLong(fid);
    int rc = value == NULL ? -1 : PyDict_SetItem(tr_frame_ids, key, value);
    Py_XDECREF(value);
    Py_DECREF(key);
    if (rc < 0) {
        return -1;
    }
    PyObject *func, *file;
    if (PyCode_Check(nd->code)) {
        func = Py_NewRef(((PyCodeObject *)nd->code)->co_qualname);
        file = Py_NewRef(((PyCodeObject *)nd->code)->co_filename);
    } else {
        func = PyUnicode_FromString("<unknown>");
        file = PyUnicode_FromString("<unknown>");
    }
    static const char *const names[] = {"frame_id", "function", "filename", "lineno"};
    PyObject *values[] = {PyLong_FromUnsignedLong(fid), func, file, PyLong_FromLong(lineno)};
    if (tr_append_row(rare, "frames", names, values, 4) < 0) {
        return -1;
    }
    return fid;
}

int tr_stack_emit(PyObject *rare)
{
    if (tr_frame_ids_stale) {
        Py_CLEAR(tr_frame_ids);
        tr_frame_ids_stale = 0;
    }
    if (tr_frame_ids == NULL && (tr_frame_ids = PyDict_New()) == NULL) {
        return -1;
    }
    static const char *const names[] = {"stack_id", "parent_id", "frame_id"};
    /* Index-based: Python calls below may let other threads run and grow the tree. */
    while (tr_emitted_nodes < tr_n_nodes) {
        uint32_t id = tr_emitted_nodes;
        if (tr_nodes[id].frame_id == 0) {
            int64_t fid = tr_frame_id_of(rare, &tr_nodes[id]);
            if (fid < 0) {
                return -1;
            }
            tr_nodes[id].frame_id = (uint32_t)fid;
        }
        tr_node_t nd = tr_nodes[id];
        PyObject *values[] = {PyLong_FromUnsignedLong(id), PyLong_FromUnsignedLong(nd.parent),
                              PyLong_FromUnsignedLong(nd.frame_id)};
        if (tr_append_row(rare, "stacks", names, values, 3) < 0) {
            return -1;
        }
        tr_emitted_nodes = id + 1;
    }
    return 0;
}

/* native mode hook: the line of `instr` in code object `code` (-1 if not a code object). */
int tr_stack_lineno(PyObject *code, const void *instr)
{
    return tr_instr_lineno(code, instr);
}
