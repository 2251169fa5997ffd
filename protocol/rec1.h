/* memscope's rec1 records: the one C definition of record kinds, allocator domains and the
 * rec1 layout (little-endian; protocol/records.py documents it byte by byte and
 * protocol/wire.py names the codes). The tracer (producer/core) writes records with these
 * helpers, the preload shim uses the same codes, and rec1.c reads and encodes them.
 * Pure C: no Python header, so the shim can include it. */
#ifndef MEMSCOPE_REC1_H
#define MEMSCOPE_REC1_H

#include <stddef.h>
#include <stdint.h>

/* Record kinds and allocator domains (tests/unit/test_kinds_and_domains.py checks them
 * against protocol/wire.py through the modules that export them). */
enum { TR_ALLOC = 0, TR_CALLOC = 1, TR_REALLOC = 2, TR_FREE = 3 };
enum {
    TR_RAW = 0,    /* PyMem_RawMalloc & co. */
    TR_MEM = 1,    /* PyMem_Malloc & co. */
    TR_OBJ = 2,    /* PyObject_Malloc & co. */
    TR_NUMPY = 3,  /* numpy array data */
    TR_NATIVE = 4, /* malloc & co. of any library (native mode) */
    TR_MMAP = 5,   /* mmap/munmap (native mode) */
    TR_DOMAIN_MAX = 5
};

/* rec1 chunk header (little-endian), see protocol/records.py for the full layout. */
#define TR_REC1_MAGIC 0x31636572u /* "rec1" */
#define TR_REC1_HEADER 56
/* Longest record: header byte + 5 varints of at most 10 bytes. */
#define TR_MAX_RECORD 64
#define TR_HDR_STACK 0x20u
#define TR_HDR_SAME_TICK 0x40u /* the tick equals the previous record's: no tick varint */
#define TR_HDR_RESERVED 0x80u

/* A chunk's clock mapping: ticks to CLOCK_MONOTONIC ns. */
typedef struct {
    uint64_t tick; /* reference tick ... */
    int64_t ns;    /* ... and the CLOCK_MONOTONIC ns at that tick */
    uint64_t mult; /* ns per tick, 32.32 fixed point */
} tr_clock_t;

/* Delta state of a rec1 stream: the values the next record is relative to. */
typedef struct {
    uint64_t tick;
    uint64_t addr;
    uint32_t stack;
} tr_delta_t;

/* ---- varints and zigzag ---- */
static inline uint8_t *tr_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t tr_zz64(uint64_t delta) /* delta taken mod 2^64, read as signed */
{
    return (delta << 1) ^ (uint64_t)((int64_t)delta >> 63);
}

static inline uint64_t tr_zz32(uint32_t delta)
{
    return (uint64_t)((delta << 1) ^ (uint32_t)((int32_t)delta >> 31));
}

static inline uint64_t tr_unzz64(uint64_t v)
{
    return (v >> 1) ^ (0 - (v & 1));
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

/* The 56-byte header of a rec1 chunk of n records (rec1.c). */
void tr_write_header(uint8_t *h, uint64_t n, tr_delta_t base, const tr_clock_t *clock);

/* ---- reading rec1 (rec1.c) ---- */
typedef struct {
    uint64_t n;
    tr_delta_t end;
    uint64_t max_tick; /* the largest tick of the records walked (and of the start state) */
} tr_scan_t;
/* Walks records of [p, p+len) from state `st`; returns bytes consumed by whole records
 * (at most max_records of them) and fills `out`. Only for trusted (self-written) data. */
size_t tr_rec1_scan(const uint8_t *p, size_t len, tr_delta_t st, uint64_t max_records,
                    tr_scan_t *out);
/* The same for bytes that may be damaged: stops at the first malformed record. */
size_t tr_rec1_scan_checked(const uint8_t *p, size_t len, tr_delta_t st, tr_scan_t *out);

#endif
