/* The memscope.protocol._rec1 module: rec1 chunks decoded, validated and encoded for Python
 * (the broker, the log reader, tests). Every input is untrusted: every read is
 * bounds-checked, and a malformed chunk raises memscope.protocol.wire.WireError. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "rec1.h"
#include "rec1_py.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static uint64_t tr_get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t tr_get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static PyObject *tr_wire_error(const char *fmt, ...)
{
    PyObject *wire = PyImport_ImportModule("memscope.protocol.wire");
    if (wire == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_GetAttrString(wire, "WireError");
    Py_DECREF(wire);
    if (exc == NULL) {
        return NULL;
    }
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (msg != NULL) {
        PyErr_SetObject(exc, msg);
        Py_DECREF(msg);
    }
    Py_DECREF(exc);
    return NULL;
}

typedef struct {
    int64_t *ts;
    uint8_t *kind, *domain;
    uint64_t *addr, *old, *size;
    uint32_t *stack;
} tr_columns_t;

/* Walks n records of untrusted input; returns NULL on success, else a static description of
 * the fault. With `store` it writes the decoded columns into `c` (decode), without it only
 * checks (validate: every read bounds-checked, every varint complete, the count exact, no
 * trailing bytes). Both instantiations accept exactly the same inputs. */
static inline __attribute__((always_inline)) const char *
tr_rec1_walk(const uint8_t *p, const uint8_t *end, uint64_t n, tr_delta_t st,
             const tr_clock_t *clock, tr_columns_t *c, uint64_t *at, const int store)
{
    uint64_t v;
    for (uint64_t i = 0; i < n; i++) {
        *at = i;
        if (p >= end) {
            return "data ends before the last record";
        }
        unsigned hdr = *p++;
        unsigned kind = hdr & 3, domain = (hdr >> 2) & 7;
        if (hdr & TR_HDR_RESERVED) {
            return "reserved header bits set";
        }
        if (domain > TR_DOMAIN_MAX) {
            return "unknown domain";
        }
        if (!(hdr & TR_HDR_SAME_TICK)) {
            if ((p = tr_get_varint_checked(p, end, &v)) == NULL) {
                return "bad tick varint";
            }
            st.tick += tr_unzz64(v);
        }
        if ((p = tr_get_varint_checked(p, end, &v)) == NULL) {
            return "bad address varint";
        }
        st.addr += tr_unzz64(v);
        uint64_t size = 0, old = 0;
        if (kind != TR_FREE && (p = tr_get_varint_checked(p, end, &size)) == NULL) {
            return "bad size varint";
        }
        if (kind == TR_REALLOC) {
            if ((p = tr_get_varint_checked(p, end, &v)) == NULL) {
                return "bad old-address varint";
            }
            old = st.addr + tr_unzz64(v);
        }
        uint32_t stack = kind == TR_FREE ? 0 : st.stack;
        if (hdr & TR_HDR_STACK) {
            if ((p = tr_get_varint_checked(p, end, &v)) == NULL || v > 0xFFFFFFFFull) {
                return "bad stack varint";
            }
            st.stack += (uint32_t)tr_unzz64(v);
            stack = st.stack;
        }
        if (store) {
            /* ts_ns = ns + (signed(tick - ref) * mult) >> 32, all modulo 2^64 */
            __int128 rel = (__int128)(int64_t)(st.tick - clock->tick) * (__int128)clock->mult;
            c->ts[i] = (int64_t)((uint64_t)clock->ns + (uint64_t)(rel >> 32));
            c->kind[i] = (uint8_t)kind;
            c->domain[i] = (uint8_t)domain;
            c->addr[i] = st.addr;
            c->old[i] = old;
            c->size[i] = size;
            c->stack[i] = stack;
        } else {
            (void)old;
            (void)size;
            (void)stack;
        }
    }
    *at = n;
    if (p != end) {
        return "trailing bytes after the last record";
    }
    return NULL;
}

static const char *tr_rec1_decode(const uint8_t *p, const uint8_t *end, uint64_t n, tr_delta_t st,
                                  const tr_clock_t *clock, tr_columns_t *c, uint64_t *at)
{
    return tr_rec1_walk(p, end, n, st, clock, c, at, 1);
}

static const char *tr_rec1_validate(const uint8_t *p, const uint8_t *end, uint64_t n, tr_delta_t st,
                                    uint64_t *at)
{
    return tr_rec1_walk(p, end, n, st, NULL, NULL, at, 0);
}

/* The header of an untrusted chunk: checks it (raising WireError) and returns 0, or -1. */
static int tr_rec1_header(const uint8_t *data, size_t len, unsigned long long n_chunk,
                          uint64_t *n_out, tr_clock_t *clock, tr_delta_t *st)
{
    if (len < TR_REC1_HEADER) {
        tr_wire_error("rec1 chunk of %zu bytes is shorter than its %d-byte header", len,
                      TR_REC1_HEADER);
        return -1;
    }
    if (tr_get_u32(data) != TR_REC1_MAGIC || tr_get_u32(data + 52) != 0) {
        tr_wire_error("rec1 chunk has a bad magic number or reserved field");
        return -1;
    }
    uint64_t n = tr_get_u32(data + 4);
    if (n != n_chunk) {
        tr_wire_error("rec1 chunk header counts %llu records but the chunk says n=%llu",
                      (unsigned long long)n, n_chunk);
        return -1;
    }
    if (n > (len - TR_REC1_HEADER) / 2) { /* a record is at least 2 bytes */
        tr_wire_error("rec1 chunk claims %llu records in %zu bytes", (unsigned long long)n,
                      len - TR_REC1_HEADER);
        return -1;
    }
    *n_out = n;
    clock->tick = tr_get_u64(data + 8);
    clock->ns = (int64_t)tr_get_u64(data + 16);
    clock->mult = tr_get_u64(data + 24);
    st->tick = tr_get_u64(data + 32);
    st->addr = tr_get_u64(data + 40);
    st->stack = tr_get_u32(data + 48);
    return 0;
}

static PyObject *tr_new_column(Py_ssize_t n, size_t itemsize, void **data)
{
    PyObject *col = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)itemsize);
    if (col != NULL) {
        *data = PyByteArray_AS_STRING(col);
    }
    return col;
}

/* Raises WireError for the fault a walk of a chunk's n records met at record `at`; returns
 * -1 then, 0 when there was none. */
static int tr_rec1_fault(const char *fault, uint64_t at, uint64_t n)
{
    if (fault == NULL) {
        return 0;
    }
    tr_wire_error("rec1 record %llu of %llu: %s", (unsigned long long)at, (unsigned long long)n,
                  fault);
    return -1;
}

/* Decodes a checked chunk (header already read) into c with the GIL released. */
static int tr_rec1_decode_columns(const uint8_t *data, size_t len, uint64_t n, tr_delta_t st,
                                  const tr_clock_t *clock, tr_columns_t *c)
{
    const char *fault;
    uint64_t at = 0;
    Py_BEGIN_ALLOW_THREADS
    fault = tr_rec1_decode(data + TR_REC1_HEADER, data + len, n, st, clock, c, &at);
    Py_END_ALLOW_THREADS
    return tr_rec1_fault(fault, at, n);
}

/* decode_rec1(data, n) -> (ts_ns, kind, domain, address, old_address, size, stack_id) as
 * bytearrays of little-endian <i8, u1, u1, <u8, <u8, <u8, <u4. */
static PyObject *tr_py_decode_rec1(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long n_chunk;
    if (!PyArg_ParseTuple(args, "y*K", &view, &n_chunk)) {
        return NULL;
    }
    PyObject *result = NULL;
    const uint8_t *data = view.buf;
    size_t len = (size_t)view.len;
    uint64_t n;
    tr_clock_t clock;
    tr_delta_t st;
    if (tr_rec1_header(data, len, n_chunk, &n, &clock, &st) < 0) {
        goto done;
    }
    tr_columns_t c;
    PyObject *cols[7];
    cols[0] = tr_new_column((Py_ssize_t)n, 8, (void **)&c.ts);
    cols[1] = tr_new_column((Py_ssize_t)n, 1, (void **)&c.kind);
    cols[2] = tr_new_column((Py_ssize_t)n, 1, (void **)&c.domain);
    cols[3] = tr_new_column((Py_ssize_t)n, 8, (void **)&c.addr);
    cols[4] = tr_new_column((Py_ssize_t)n, 8, (void **)&c.old);
    cols[5] = tr_new_column((Py_ssize_t)n, 8, (void **)&c.size);
    cols[6] = tr_new_column((Py_ssize_t)n, 4, (void **)&c.stack);
    int ok = 1;
    for (int i = 0; i < 7; i++) {
        ok &= cols[i] != NULL;
    }
    if (ok && tr_rec1_decode_columns(data, len, n, st, &clock, &c) == 0) {
        result = PyTuple_Pack(7, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]);
    }
    for (int i = 0; i < 7; i++) {
        Py_XDECREF(cols[i]);
    }
done:
    PyBuffer_Release(&view);
    return result;
}

/* validate_rec1(data, n) -> None: raises WireError exactly when decode_rec1 would, without
 * building any column (the broker's check before it stores a chunk as it arrived). */
static PyObject *tr_py_validate_rec1(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long n_chunk;
    if (!PyArg_ParseTuple(args, "y*K", &view, &n_chunk)) {
        return NULL;
    }
    PyObject *result = NULL;
    const uint8_t *data = view.buf;
    size_t len = (size_t)view.len;
    uint64_t n, at = 0;
    tr_clock_t clock;
    tr_delta_t st;
    if (tr_rec1_header(data, len, n_chunk, &n, &clock, &st) == 0) {
        const char *fault;
        Py_BEGIN_ALLOW_THREADS
        fault = tr_rec1_validate(data + TR_REC1_HEADER, data + len, n, st, &at);
        Py_END_ALLOW_THREADS
        if (tr_rec1_fault(fault, at, n) == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

/* A column buffer the code may index as an array of `itemsize`-byte items: aligned for
 * them (a memoryview slice or a bytearray need not be). */
static int tr_aligned(const Py_buffer *view, Py_ssize_t itemsize)
{
    if ((uintptr_t)view->buf % (uintptr_t)itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "column buffer not aligned for %zd-byte items", itemsize);
        return -1;
    }
    return 0;
}

/* A writable output column: at least `rows` items of `itemsize` bytes, aligned for them.
 * (`rows * itemsize` is never computed: it could overflow.) */
static int tr_out_column(Py_buffer *view, Py_ssize_t rows, Py_ssize_t itemsize, void **data)
{
    if (rows > view->len / itemsize) {
        PyErr_SetString(PyExc_ValueError, "output column too short");
        return -1;
    }
    if (tr_aligned(view, itemsize) < 0) {
        return -1;
    }
    *data = view->buf;
    return 0;
}

/* decode_rec1_into(data, n, ts, kind, domain, address, old_address, size, stack_id, row)
 * decodes the chunk into the writable buffers starting at row `row` (the read side builds
 * one record batch from many chunks without concatenating). Returns n. */
static PyObject *tr_py_decode_rec1_into(PyObject *self, PyObject *args)
{
    Py_buffer view, out[7];
    unsigned long long n_chunk;
    Py_ssize_t row;
    memset(out, 0, sizeof(out));
    if (!PyArg_ParseTuple(args, "y*Kw*w*w*w*w*w*w*n", &view, &n_chunk, &out[0], &out[1], &out[2],
                          &out[3], &out[4], &out[5], &out[6], &row)) {
        return NULL;
    }
    PyObject *result = NULL;
    const uint8_t *data = view.buf;
    size_t len = (size_t)view.len;
    uint64_t n;
    tr_clock_t clock;
    tr_delta_t st;
    tr_columns_t c;
    static const Py_ssize_t sizes[7] = {8, 1, 1, 8, 8, 8, 4};
    void *ptr[7];
    if (tr_rec1_header(data, len, n_chunk, &n, &clock, &st) < 0) {
        goto done;
    }
    if (row < 0) {
        PyErr_SetString(PyExc_ValueError, "negative row");
        goto done;
    }
    if (n > (uint64_t)(PY_SSIZE_T_MAX - row)) { /* row + n would overflow */
        PyErr_SetString(PyExc_ValueError, "output column too short");
        goto done;
    }
    for (int i = 0; i < 7; i++) {
        if (tr_out_column(&out[i], row + (Py_ssize_t)n, sizes[i], &ptr[i]) < 0) {
            goto done;
        }
    }
    c.ts = (int64_t *)ptr[0] + row;
    c.kind = (uint8_t *)ptr[1] + row;
    c.domain = (uint8_t *)ptr[2] + row;
    c.addr = (uint64_t *)ptr[3] + row;
    c.old = (uint64_t *)ptr[4] + row;
    c.size = (uint64_t *)ptr[5] + row;
    c.stack = (uint32_t *)ptr[6] + row;
    if (tr_rec1_decode_columns(data, len, n, st, &clock, &c) == 0) {
        result = PyLong_FromUnsignedLongLong(n);
    }
done:
    PyBuffer_Release(&view);
    for (int i = 0; i < 7; i++) {
        if (out[i].obj != NULL) {
            PyBuffer_Release(&out[i]);
        }
    }
    return result;
}

/* encode_rec1(ts_ns, kind, domain, address, old_address, size, stack_id) -> bytes: a rec1
 * chunk's data of the given columns (buffers of the MEMORY_COLUMNS dtypes), with ticks in
 * ns (identity clock) and a zero start state. Raises ValueError for rows rec1 cannot hold
 * (a kind or domain out of range, a free with a size, an old address outside realloc). */
static PyObject *tr_py_encode_rec1(PyObject *self, PyObject *args)
{
    Py_buffer in[7];
    memset(in, 0, sizeof(in));
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*", &in[0], &in[1], &in[2], &in[3], &in[4], &in[5],
                          &in[6])) {
        for (int i = 0; i < 7; i++) {
            if (in[i].obj != NULL) {
                PyBuffer_Release(&in[i]);
            }
        }
        return NULL;
    }
    static const Py_ssize_t sizes[7] = {8, 1, 1, 8, 8, 8, 4};
    PyObject *result = NULL;
    Py_ssize_t n = in[1].len;
    const char *fault = NULL;
    for (int i = 0; i < 7; i++) {
        if (in[i].len % sizes[i] != 0 || in[i].len / sizes[i] != n) {
            PyErr_SetString(PyExc_ValueError, "columns of unequal length");
            goto done;
        }
        if (tr_aligned(&in[i], sizes[i]) < 0) {
            goto done;
        }
    }
    if ((uint64_t)n > 0xFFFFFFFFull) {
        PyErr_SetString(PyExc_ValueError, "too many records for one rec1 chunk");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, TR_REC1_HEADER + n * TR_MAX_RECORD);
    if (result == NULL) {
        goto done;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result), *p = out + TR_REC1_HEADER;
    static const tr_clock_t ns_ticks = {0, 0, 1ull << 32}; /* ticks are ns */
    tr_write_header(out, (uint64_t)n, (tr_delta_t){0, 0, 0}, &ns_ticks);
    const int64_t *ts = in[0].buf;
    const uint8_t *kinds = in[1].buf, *domains = in[2].buf;
    const uint64_t *addrs = in[3].buf, *olds = in[4].buf, *sizes_in = in[5].buf;
    const uint32_t *stacks = in[6].buf;
    tr_delta_t st = {0, 0, 0};
    for (Py_ssize_t i = 0; i < n && fault == NULL; i++) {
        unsigned kind = kinds[i], domain = domains[i];
        uint64_t tick = (uint64_t)ts[i], addr = addrs[i];
        if (kind > TR_FREE || domain > TR_DOMAIN_MAX) {
            fault = "kind or domain out of range";
            break;
        }
        if ((kind == TR_FREE && sizes_in[i] != 0) || (kind != TR_REALLOC && olds[i] != 0)) {
            fault = "a free with a size, or an old address outside a realloc";
            break;
        }
        int with_stack = kind == TR_FREE ? stacks[i] != 0 : stacks[i] != st.stack;
        *p++ = (uint8_t)(kind | (domain << 2) | (with_stack ? TR_HDR_STACK : 0));
        p = tr_put_varint(p, tr_zz64(tick - st.tick));
        p = tr_put_varint(p, tr_zz64(addr - st.addr));
        if (kind != TR_FREE) {
            p = tr_put_varint(p, sizes_in[i]);
        }
        if (kind == TR_REALLOC) {
            p = tr_put_varint(p, tr_zz64(olds[i] - addr));
        }
        if (with_stack) {
            p = tr_put_varint(p, tr_zz32(stacks[i] - st.stack));
            st.stack = stacks[i];
        }
        st.tick = tick;
        st.addr = addr;
    }
    if (fault != NULL) {
        Py_CLEAR(result);
        PyErr_Format(PyExc_ValueError, "encode_rec1: %s", fault);
        goto done;
    }
    _PyBytes_Resize(&result, p - out);
done:
    for (int i = 0; i < 7; i++) {
        PyBuffer_Release(&in[i]);
    }
    return result;
}

static PyMethodDef rec1_methods[] = {
    {"decode_rec1", tr_py_decode_rec1, METH_VARARGS,
     "decode_rec1(data, n) -> 7 bytearrays (MEMORY_COLUMNS order)"},
    {"validate_rec1", tr_py_validate_rec1, METH_VARARGS,
     "validate_rec1(data, n): raise WireError iff decode_rec1 would (builds no columns)"},
    {"decode_rec1_into", tr_py_decode_rec1_into, METH_VARARGS,
     "decode_rec1_into(data, n, 7 writable columns, row) -> n"},
    {"encode_rec1", tr_py_encode_rec1, METH_VARARGS,
     "encode_rec1(7 column buffers) -> rec1 data (identity clock, zero start state)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rec1_module = {
    PyModuleDef_HEAD_INIT, "_rec1", "The rec1 record codec (protocol/rec1.h).", -1, rec1_methods,
};

PyMODINIT_FUNC PyInit__rec1(void)
{
    PyObject *m = PyModule_Create(&rec1_module);
    if (m != NULL && rec1_add_constants(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
