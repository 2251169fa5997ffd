/* memscope tracer: the blocks memscope itself allocated in the traced process.
 *
 * A thread that records nothing of its own (the publisher, after ignore_current_thread; any
 * thread while paused or draining) still allocates and frees. Its allocations go into this
 * set instead of the trace; a free by such a thread of an address in the set is memscope's
 * own (dropped from the set, not recorded), any other free by the publisher is of a block the
 * program allocated and is recorded (tr_hooks.c). So the log never holds a free of a block
 * whose allocation it cannot hold, and no program block the publisher releases looks leaked.
 *
 * Only those threads touch the set, always through tr_own_lock; the program's threads never
 * do, so its hooks pay nothing for it. A block of the set that a program thread frees stays
 * in the set (its free is recorded, unmatched) until the set's owner frees that address.
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones); keys are
 * addresses (never 0). At most TR_OWN_MAX entries: past that an allocation is not remembered
 * and its free reads as a free of a never-seen block (counted by readers as unmatched).
 */
#include "tr_core.h"

#define TR_OWN_MAX (1u << 22)

static pthread_mutex_t tr_own_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *tr_own_keys; /* tr_own_lock */
static size_t tr_own_cap;     /* power of two, 0 before the first add (tr_own_lock) */
static size_t tr_own_n;       /* entries (tr_own_lock) */

static inline size_t tr_own_hash(uint64_t a)
{
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    a ^= a >> 33;
    return (size_t)a;
}

static void tr_own_put(uint64_t *keys, size_t cap, uint64_t key)
{
    size_t mask = cap - 1, i = tr_own_hash(key) & mask;
    while (keys[i] != 0 && keys[i] != key) {
        i = (i + 1) & mask;
    }
    keys[i] = key;
}

static int tr_own_grow(void)
{
    size_t cap = tr_own_cap ? tr_own_cap * 2 : 4096;
    uint64_t *keys = tr_raw_calloc(cap, sizeof(uint64_t));
    if (keys == NULL) {
        return 0;
    }
    for (size_t i = 0; i < tr_own_cap; i++) {
        if (tr_own_keys[i] != 0) {
            tr_own_put(keys, cap, tr_own_keys[i]);
        }
    }
    tr_raw_free(tr_own_keys);
    tr_own_keys = keys;
    tr_own_cap = cap;
    return 1;
}

void tr_own_add(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    pthread_mutex_lock(&tr_own_lock);
    if (tr_own_n < TR_OWN_MAX && ((tr_own_n + 1) * 2 <= tr_own_cap || tr_own_grow())) {
        size_t mask = tr_own_cap - 1, i = tr_own_hash(key) & mask;
        while (tr_own_keys[i] != 0 && tr_own_keys[i] != key) {
            i = (i + 1) & mask;
        }
        if (tr_own_keys[i] == 0) {
            tr_own_keys[i] = key;
            tr_own_n++;
        }
    }
    pthread_mutex_unlock(&tr_own_lock);
}

int tr_own_remove(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    int found = 0;
    pthread_mutex_lock(&tr_own_lock);
    if (tr_own_n != 0) {
        size_t mask = tr_own_cap - 1, i = tr_own_hash(key) & mask;
        while (tr_own_keys[i] != 0 && tr_own_keys[i] != key) {
            i = (i + 1) & mask;
        }
        if (tr_own_keys[i] == key) {
            found = 1;
            tr_own_n--;
            /* backward shift: move later entries of the run into the hole when allowed */
            size_t hole = i, j = i;
            for (;;) {
                j = (j + 1) & mask;
                if (tr_own_keys[j] == 0) {
                    break;
                }
                size_t home = tr_own_hash(tr_own_keys[j]) & mask;
                /* the entry at j may fill the hole if its home is not in (hole, j] */
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                    tr_own_keys[hole] = tr_own_keys[j];
                    hole = j;
                }
            }
            tr_own_keys[hole] = 0;
        }
    }
    pthread_mutex_unlock(&tr_own_lock);
    return found;
}

size_t tr_own_count(void)
{
    pthread_mutex_lock(&tr_own_lock);
    size_t n = tr_own_n;
    pthread_mutex_unlock(&tr_own_lock);
    return n;
}

void tr_own_atfork_prepare(void)
{
    pthread_mutex_lock(&tr_own_lock);
}
void tr_own_atfork_parent(void)
{
    pthread_mutex_unlock(&tr_own_lock);
}
/* The child keeps the set: the parent's memscope blocks it inherited are memscope's still. */
void tr_own_atfork_child(void)
{
    pthread_mutex_init(&tr_own_lock, NULL);
}
