/* memscope tracer: the live map's functions (see tr_map.h). */
#include "tr_map.h"

/* Whether tr_live_make's word matches the compiler's bit-fields (start refuses otherwise). */
int tr_hooks_layout_ok(void)
{
    tr_live_t e = tr_live_make(1, 123456789012ull, 3, 1, 0, 0, 0);
    return e.size == 123456789012ull && e.domain == 3 && e.emitted == 1 && e.pinned == 0;
}

static int tr_map_grow(tr_map_t *m)
{
    uint64_t cap = m->mask ? (m->mask + 1) * 2 : 1u << 14;
    tr_live_t *slots = tr_raw_calloc(cap, sizeof(tr_live_t));
    if (slots == NULL) {
        return -1;
    }
    for (uint64_t i = 0; m->slots != NULL && i <= m->mask; i++) {
        if (m->slots[i].addr != 0) {
            uint64_t h = tr_hash_addr(m->slots[i].addr) & (cap - 1);
            while (slots[h].addr != 0) {
                h = (h + 1) & (cap - 1);
            }
            slots[h] = m->slots[i];
        }
    }
    tr_raw_free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return 0;
}

/* Inserts (or replaces) an entry; returns -1 when memory ran out. */
int tr_map_put(tr_map_t *m, const tr_live_t *e)
{
    if ((m->count + 1) * 2 > m->mask + 1 && tr_map_grow(m) < 0) {
        return -1;
    }
    uint64_t h = tr_hash_addr(e->addr) & m->mask;
    while (m->slots[h].addr != 0 && m->slots[h].addr != e->addr) {
        h = (h + 1) & m->mask;
    }
    if (m->slots[h].addr == e->addr) {
        __atomic_store_n(&m->bytes, m->bytes - m->slots[h].size, __ATOMIC_RELAXED);
    } else {
        m->count++;
    }
    m->slots[h] = *e;
    __atomic_store_n(&m->bytes, m->bytes + e->size, __ATOMIC_RELAXED);
    return 0;
}

/* Removes the entry of addr into *out; returns 0 when there is none. */
int tr_map_take(tr_map_t *m, uint64_t addr, tr_live_t *out)
{
    if (m->count == 0) {
        return 0;
    }
    uint64_t h = tr_hash_addr(addr) & m->mask;
    while (m->slots[h].addr != addr) {
        if (m->slots[h].addr == 0) {
            return 0;
        }
        h = (h + 1) & m->mask;
    }
    *out = m->slots[h];
    m->count--;
    __atomic_store_n(&m->bytes, m->bytes - out->size, __ATOMIC_RELAXED);
    /* backward-shift deletion keeps probe chains intact without tombstones */
    uint64_t hole = h, j = h;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].addr == 0) {
            break;
        }
        uint64_t home = tr_hash_addr(m->slots[j].addr) & m->mask;
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].addr = 0;
    return 1;
}

void tr_map_clear(tr_map_t *m)
{
    tr_raw_free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Finds the live entry of addr in whichever table holds it; the caller holds the GIL and,
 * for tr_map_locked, tr_map_lock. */
tr_live_t *tr_find(tr_map_t *m, uint64_t addr)
{
    if (m->count == 0) {
        return NULL;
    }
    uint64_t h = tr_hash_addr(addr) & m->mask;
    while (m->slots[h].addr != 0) {
        if (m->slots[h].addr == addr) {
            return &m->slots[h];
        }
        h = (h + 1) & m->mask;
    }
    return NULL;
}
