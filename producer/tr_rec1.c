/* rec1: scanning our own record stream (drain) and decoding untrusted chunks (broker).
 * The byte layout is documented in producer/records.py beside the pure-Python twin. */
#include "tr_core.h"

static inline uint64_t tr_unzz64(uint64_t v) { return (v >> 1) ^ (0 - (v & 1)); }

/* Trusted: bytes we wrote ourselves, whole records only. */
static inline const uint8_t *tr_get_varint_fast(const uint8_t *p, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t byte;
    do {
        byte = *p++;
        v |= (uint64_t)(byte & 0x7F) << shift;
        shift += 7;
    } while (byte & 0x80);
    *out = v;
    return p;
}

size_t tr_rec1_scan(const uint8_t *p, size_t len, tr_delta_t st, uint64_t max_records,
                    tr_scan_t *out)
{
    const uint8_t *start = p, *end = p + len;
    uint64_t n = 0, v;
    while (p < end && n < max_records) {
        unsigned hdr = *p++;
        unsigned kind = hdr & 3;
        if (!(hdr & TR_HDR_SAME_TICK)) {
            p = tr_get_varint_fast(p, &v);
            st.tick += tr_unzz64(v);
        }
        p = tr_get_varint_fast(p, &v);
        st.addr += tr_unzz64(v);
        if (kind != TR_FREE) {
            p = tr_get_varint_fast(p, &v);
        }
        if (kind == TR_REALLOC) {
            p = tr_get_varint_fast(p, &v);
        }
        if (hdr & TR_HDR_STACK) {
            p = tr_get_varint_fast(p, &v);
            st.stack += (uint32_t)tr_unzz64(v);
        }
        n++;
    }
    out->n = n;
    out->end = st;
    return (size_t)(p - start);
}

/* Untrusted input: every read is bounds-checked; returns NULL on malformed varints. */
static inline const uint8_t *tr_get_varint_checked(const uint8_t *p, const uint8_t *end,
                                                   uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p >= end) {
            return NULL;
        }
        uint8_t byte = *p++;
        if (i == 9 && byte > 1) {
            return NULL; /* more than 64 bits */
        }
        v |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            *out = v;
            return p;
        }
    }
    return NULL;
}

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
    PyObject *wire = PyImport_ImportModule("memscope.producer.wire");
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

/* Decodes n records; returns NULL on success, else a static description of the fault. */
static const char *tr_rec1_decode(const uint8_t *p, const uint8_t *end, uint64_t n,
                                  tr_delta_t st, const tr_clock_t *clock, tr_columns_t *c,
                                  uint64_t *at)
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
        /* ts_ns = ns + (signed(tick - ref) * mult) >> 32, all modulo 2^64 */
        __int128 rel = (__int128)(int64_t)(st.tick - clock->tick) * (__int128)clock->mult;
        c->ts[i] = (int64_t)((uint64_t)clock->ns + (uint64_t)(rel >> 32));
        c->kind[i] = (uint8_t)kind;
        c->domain[i] = (uint8_t)domain;
        c->addr[i] = st.addr;
        c->old[i] = old;
        c->size[i] = size;
        c->stack[i] = stack;
    }
    *at = n;
    if (p != end) {
        return "trailing bytes after the last record";
    }
    return NULL;
}

static PyObject *tr_new_column(Py_ssize_t n, size_t itemsize, void **data)
{
    PyObject *col = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)itemsize);
    if (col != NULL) {
        *data = PyByteArray_AS_STRING(col);
    }
    return col;
}

/* decode_rec1(data, n) -> (ts_ns, kind, domain, address, old_address, size, stack_id) as
 * bytearrays of little-endian <i8, u1, u1, <u8, <u8, <u8, <u4. */
PyObject *tr_py_decode_rec1(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long long n_chunk;
    if (!PyArg_ParseTuple(args, "y*K", &view, &n_chunk)) {
        return NULL;
    }
    PyObject *result = NULL;
    const uint8_t *data = view.buf;
    size_t len = (size_t)view.len;
    if (len < TR_REC1_HEADER) {
        tr_wire_error("rec1 chunk of %zu bytes is shorter than its %d-byte header", len,
                      TR_REC1_HEADER);
        goto done;
    }
    if (tr_get_u32(data) != TR_REC1_MAGIC || tr_get_u32(data + 52) != 0) {
        tr_wire_error("rec1 chunk has a bad magic number or reserved field");
        goto done;
    }
    uint64_t n = tr_get_u32(data + 4);
    if (n != n_chunk) {
        tr_wire_error("rec1 chunk header counts %llu records but the chunk says n=%llu",
                      (unsigned long long)n, n_chunk);
        goto done;
    }
    if (n > (len - TR_REC1_HEADER) / 2) { /* a record is at least 2 bytes */
        tr_wire_error("rec1 chunk claims %llu records in %zu bytes", (unsigned long long)n,
                      len - TR_REC1_HEADER);
        goto done;
    }
    tr_clock_t clock = {tr_get_u64(data + 8), (int64_t)tr_get_u64(data + 16),
                        tr_get_u64(data + 24)};
    tr_delta_t st = {tr_get_u64(data + 32), tr_get_u64(data + 40), tr_get_u32(data + 48)};
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
    if (ok) {
        const char *fault;
        uint64_t at = 0;
        Py_BEGIN_ALLOW_THREADS
        fault = tr_rec1_decode(data + TR_REC1_HEADER, data + len, n, st, &clock, &c, &at);
        Py_END_ALLOW_THREADS
        if (fault != NULL) {
            tr_wire_error("rec1 record %llu of %llu: %s", (unsigned long long)at,
                          (unsigned long long)n, fault);
        }
        else {
            result = PyTuple_Pack(7, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5],
                                  cols[6]);
        }
    }
    for (int i = 0; i < 7; i++) {
        Py_XDECREF(cols[i]);
    }
done:
    PyBuffer_Release(&view);
    return result;
}
