/* rec1 without Python: the chunk header, and scanning a record stream (the tracer's own
 * drain, and a dead process's buffers for the crash harvest). The layout is in rec1.h;
 * rec1_codec.c decodes untrusted chunks for Python. */
#include "rec1.h"

#include <string.h>

static void tr_put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
} /* little-endian hosts */
static void tr_put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

void tr_write_header(uint8_t *h, uint64_t n, tr_delta_t base, const tr_clock_t *clock)
{
    tr_put_u32(h, TR_REC1_MAGIC);
    tr_put_u32(h + 4, (uint32_t)n);
    tr_put_u64(h + 8, clock->tick);
    tr_put_u64(h + 16, (uint64_t)clock->ns);
    tr_put_u64(h + 24, clock->mult);
    tr_put_u64(h + 32, base.tick);
    tr_put_u64(h + 40, base.addr);
    tr_put_u32(h + 48, base.stack);
    tr_put_u32(h + 52, 0);
}

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
    uint64_t n = 0, v, max_tick = st.tick;
    while (p < end && n < max_records) {
        unsigned hdr = *p++;
        unsigned kind = hdr & 3;
        if (!(hdr & TR_HDR_SAME_TICK)) {
            p = tr_get_varint_fast(p, &v);
            st.tick += tr_unzz64(v);
            max_tick = st.tick > max_tick ? st.tick : max_tick;
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
    out->max_tick = max_tick;
    return (size_t)(p - start);
}

/* Untrusted but self-written (a dead process's buffers, tr_arena.c): counts the whole,
 * well-formed records of [p, p+len) from state `st` and returns the bytes they take; a
 * malformed or cut record ends the count. */
size_t tr_rec1_scan_checked(const uint8_t *p, size_t len, tr_delta_t st, tr_scan_t *out)
{
    const uint8_t *start = p, *end = p + len, *whole = p;
    uint64_t n = 0, v, max_tick = st.tick;
    tr_delta_t at = st;
    while (p < end) {
        unsigned hdr = *p++;
        unsigned kind = hdr & 3;
        if ((hdr & TR_HDR_RESERVED) || ((hdr >> 2) & 7) > TR_DOMAIN_MAX) {
            break;
        }
        if (!(hdr & TR_HDR_SAME_TICK)) {
            if ((p = tr_get_varint_checked(p, end, &v)) == NULL) {
                break;
            }
            at.tick += tr_unzz64(v);
        }
        if ((p = tr_get_varint_checked(p, end, &v)) == NULL) {
            break;
        }
        at.addr += tr_unzz64(v);
        if (kind != TR_FREE && (p = tr_get_varint_checked(p, end, &v)) == NULL) {
            break;
        }
        if (kind == TR_REALLOC && (p = tr_get_varint_checked(p, end, &v)) == NULL) {
            break;
        }
        if (hdr & TR_HDR_STACK) {
            if ((p = tr_get_varint_checked(p, end, &v)) == NULL || v > 0xFFFFFFFFull) {
                break; /* (the broker's decoder refuses the same) */
            }
            at.stack += (uint32_t)tr_unzz64(v);
        }
        n++;
        whole = p;
        st = at;
        max_tick = st.tick > max_tick ? st.tick : max_tick;
    }
    out->n = n;
    out->end = st;
    out->max_tick = max_tick;
    return (size_t)(whole - start);
}
