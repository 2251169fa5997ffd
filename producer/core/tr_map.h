/* memscope tracer: the live map of aggregated and sampled modes (address -> pending block).
 *
 * Open addressing with linear probing and backward-shift deletion; memory from libc (never
 * traced). A map is protected by whoever owns it (tr_modes.c: the GIL or tr_map_lock).
 */
#ifndef MEMSCOPE_TR_MAP_H
#define MEMSCOPE_TR_MAP_H

#include "tr_core.h"

/* 32 bytes: two entries per cache line. */
typedef struct {
    uint64_t addr; /* 0 = empty slot */
    union {
        struct {
            uint64_t size : 48;
            uint64_t domain : 8;
            uint64_t emitted : 1; /* promoted to a real alloc event: its free is recorded */
            uint64_t pinned : 1;  /* pin(): promote at the next drain whatever its age */
        };
        uint64_t word; /* the same bits, written at once (see tr_live_make) */
    };
    uint64_t tick;
    uint32_t stack;
    uint32_t serial; /* the allocating thread (tr_thread_t.serial) */
} tr_live_t;

/* tr_live_t.word, built and read whole: a designated initializer left the bit-field word to
 * be merged through memory (a store-forwarding stall on every allocation). The bits are laid
 * out as the x86-64 and AArch64 ABIs allocate bit-fields, first field lowest (checked by
 * tr_hooks_layout_ok). */
#define TR_WORD_SIZE_MASK 0xFFFFFFFFFFFFull
#define TR_WORD_DOMAIN_SHIFT 48
#define TR_WORD_FLAGS_SHIFT 56 /* emitted, pinned: both 0 while a block waits unseen */

static inline uint64_t tr_live_word(uint64_t size, unsigned domain, int emitted)
{
    return (size & TR_WORD_SIZE_MASK) | (uint64_t)(domain & 0xFF) << TR_WORD_DOMAIN_SHIFT |
           (uint64_t)(emitted != 0) << TR_WORD_FLAGS_SHIFT;
}

static inline tr_live_t tr_live_make(uint64_t addr, uint64_t size, unsigned domain, int emitted,
                                     uint64_t tick, uint32_t stack, uint32_t serial)
{
    tr_live_t e;
    e.addr = addr;
    e.word = tr_live_word(size, domain, emitted);
    e.tick = tick;
    e.stack = stack;
    e.serial = serial;
    return e;
}

typedef struct {
    tr_live_t *slots;
    uint64_t mask, count;
    uint64_t bytes; /* sum of live sizes (written under the map's protection, read relaxed) */
} tr_map_t;

static inline uint64_t tr_hash_addr(uint64_t addr)
{
    uint64_t h = addr * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

/* Inserts (or replaces) an entry; returns -1 when memory ran out. */
int tr_map_put(tr_map_t *m, const tr_live_t *e);
/* Removes the entry of addr into *out; returns 0 when there is none. */
int tr_map_take(tr_map_t *m, uint64_t addr, tr_live_t *out);
void tr_map_clear(tr_map_t *m);
/* The entry of addr, or NULL; the caller holds the map's protection. */
tr_live_t *tr_find(tr_map_t *m, uint64_t addr);

#endif
