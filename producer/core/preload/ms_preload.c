/* memscope native mode: the allocator shim preloaded (LD_PRELOAD) into traced processes.
 *
 * Why symbol interposition through LD_PRELOAD (and not PLT/GOT patching):
 *   - A preloaded library comes first in the global symbol scope, so every malloc, calloc,
 *     realloc, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, mmap and munmap
 *     call through a PLT -- from the interpreter, from C extensions, from libraries loaded
 *     later with dlopen (RTLD_LOCAL or not), and from glibc itself (its internal malloc calls
 *     go through its PLT so that malloc can be replaced) -- reaches this file. Nothing has to
 *     be patched when a library is loaded, and nothing is missed between a dlopen and a patch.
 *   - The environment variable is inherited: fork, spawn and exec-ed children (Python or not)
 *     are covered without any help from them.
 *   - Function pointers taken with dlsym() on a library's own handle (ctypes'
 *     CDLL("libc.so.6").malloc) would bypass interposition, so dlsym() is interposed too:
 *     for an explicit handle, a result equal to one of the real functions is replaced by the
 *     hook. RTLD_DEFAULT and RTLD_NEXT lookups are passed on as a sibling (tail) call, so the
 *     C library still sees its real caller.
 *   Not covered: libraries opened with RTLD_DEEPBIND, statically linked allocators, and
 *   glibc-internal mmap calls (malloc's own large blocks are seen as malloc calls).
 *
 * Safety rules (the hooks run everywhere, before main and in any thread):
 *   - No I/O, no Python, no allocation through the hooked functions. Bookkeeping memory comes
 *     from the real mmap.
 *   - Early start: dlsym()/dlvsym() allocate while the real symbols are being resolved; those
 *     requests are served from a static bump buffer, whose blocks are never given to libc.
 *   - A thread-local flag marks the tracer's own code (ops->record() and what it calls): its
 *     allocations are forwarded untraced (but still kept in the live set).
 *   - The live set (every heap block malloc & co. returned, sharded, spin-locked) decides
 *     what a free may forward: a free or realloc of an address that is not live is NOT passed
 *     to libc (that would corrupt the heap or abort the process) but counted and reported as
 *     a double free (the address is in the recently-freed cache) or an invalid free. The set
 *     is complete because the shim is there from the process's first allocation; if it ever
 *     fails to grow, blocking stops (unknown frees are forwarded again).
 *   - fork: pthread_atfork handlers take every shard lock before fork and release them after
 *     (in parent and child); a lock is never held while ops->record() runs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ms_preload.h"

#define MS_EXPORT __attribute__((visibility("default")))
#define MS_LIKELY(x) __builtin_expect(!!(x), 1)
#define MS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MS_CALLER() ((uint64_t)(uintptr_t)__builtin_return_address(0))

/* ------------------------------------------------------------------ real functions */

/* Written once by ms_init() (before ms_state becomes MS_READY, release); read-only after. */
static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*munmap)(void *, size_t);
    size_t (*malloc_usable_size)(void *);
    void *(*dlsym)(void *, const char *);
    void *(*dlopen)(const char *, int);
} real;

enum { MS_UNINIT = 0, MS_INITIALIZING = 1, MS_READY = 2, MS_FAILED = 3 };

/* The hooks' own address (a hidden alias, defined below with the others). */
extern void *ms_local_malloc(size_t) __attribute__((visibility("hidden")));
static int ms_state; /* atomic */

/* Thread-local flags (static TLS: the shim is always loaded at start-up). */
static __thread int ms_tls_in __attribute__((tls_model("initial-exec")));   /* in the tracer */
static __thread int ms_tls_boot __attribute__((tls_model("initial-exec"))); /* in ms_init */

/* ------------------------------------------------------------------ bootstrap buffer */

/* Serves allocations made while the real functions are resolved (dlsym's own calloc).
 * Never reused, so its memory is zero (calloc-safe). Each block is preceded by its size. */
#define MS_BOOT_SIZE (256 * 1024)
static unsigned char ms_boot[MS_BOOT_SIZE] __attribute__((aligned(64)));
static size_t ms_boot_used; /* atomic */

static inline int ms_in_boot(const void *p)
{
    return (const unsigned char *)p >= ms_boot && (const unsigned char *)p < ms_boot + MS_BOOT_SIZE;
}

static void *ms_boot_alloc(size_t size, size_t align)
{
    if (align < 16) {
        align = 16;
    }
    if (size > MS_BOOT_SIZE) {
        return NULL;
    }
    size_t need = size + align + 16;
    size_t start = __atomic_fetch_add(&ms_boot_used, need, __ATOMIC_RELAXED);
    if (start + need > MS_BOOT_SIZE) {
        return NULL;
    }
    uintptr_t base = (uintptr_t)(ms_boot + start) + 16;
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = size;
    return (void *)p;
}

static inline size_t ms_boot_size(const void *p)
{
    return ((const size_t *)p)[-1];
}

/* ------------------------------------------------------------------ findings / stats */

static uint64_t ms_count_double, ms_count_invalid, ms_count_invalid_realloc, ms_count_untracked;
static int ms_lost; /* the live set missed a block: stop blocking unknown frees (atomic) */
/* Late mode (memscope_native_patch): the shim was loaded after start-up and hooks the GOTs of
 * the loaded objects, so blocks allocated before are unknown to the live set: an unknown
 * free is forwarded, unless the address is in the recently-freed cache (a double free of a
 * block freed through the hooks). Set once, before any GOT is patched. */
static int ms_late;

/* Whether a free/realloc of `p`, which the live set does not hold, must not reach libc. */
static int ms_freed_seen(void *p);
static inline int ms_must_block(void *p)
{
    if (__atomic_load_n(&ms_lost, __ATOMIC_RELAXED)) {
        return 0;
    }
    return !__atomic_load_n(&ms_late, __ATOMIC_RELAXED) || ms_freed_seen(p);
}

/* ------------------------------------------------------------------ live set */

/* Open addressing (linear probing, backward-shift deletion) in MS_SHARDS shards, each behind
 * its own spin lock. Slot memory comes from the real mmap. Key 0 = empty. */
#define MS_SHARDS 128
typedef struct {
    int lock;
    uint64_t *slots;
    uint64_t mask; /* capacity - 1; 0 while slots == NULL */
    uint64_t count;
} __attribute__((aligned(64))) ms_shard_t; /* one cache line each */

static ms_shard_t ms_shards[MS_SHARDS];

static inline uint64_t ms_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static inline void ms_lock(int *lock)
{
    unsigned spins = 0;
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(lock, __ATOMIC_RELAXED)) {
            if (++spins > 64) {
                sched_yield();
                spins = 0;
            }
        }
    }
}

static inline void ms_unlock(int *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

static int ms_grow(ms_shard_t *s)
{
    uint64_t cap = s->mask ? (s->mask + 1) * 2 : 1024;
    uint64_t *slots = real.mmap(NULL, cap * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) {
        return -1;
    }
    for (uint64_t i = 0; s->slots != NULL && i <= s->mask; i++) {
        uint64_t key = s->slots[i];
        if (key != 0) {
            uint64_t h = ms_mix(key) & (cap - 1);
            while (slots[h] != 0) {
                h = (h + 1) & (cap - 1);
            }
            slots[h] = key;
        }
    }
    /* the new table is published before the old one is unmapped: a forked child whose
     * parent thread stopped anywhere in here never reads unmapped memory (late mode) */
    uint64_t *old = s->slots, old_cap = s->mask + 1;
    s->slots = slots;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    s->mask = cap - 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (old != NULL) {
        real.munmap(old, old_cap * sizeof(uint64_t));
    }
    return 0;
}

static inline ms_shard_t *ms_shard_of(uint64_t key)
{
    return &ms_shards[(key >> 4) % MS_SHARDS];
}

static void ms_live_insert(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    ms_shard_t *s = ms_shard_of(key);
    ms_lock(&s->lock);
    if ((s->count + 1) * 2 > s->mask + 1 && ms_grow(s) < 0) {
        ms_unlock(&s->lock);
        __atomic_store_n(&ms_lost, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&ms_count_untracked, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t h = ms_mix(key) & s->mask;
    while (s->slots[h] != 0 && s->slots[h] != key) {
        h = (h + 1) & s->mask;
    }
    if (s->slots[h] == 0) {
        s->slots[h] = key;
        s->count++;
    }
    ms_unlock(&s->lock);
}

/* Removes p; returns 1 when it was live. */
static int ms_live_remove(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    ms_shard_t *s = ms_shard_of(key);
    ms_lock(&s->lock);
    if (s->count == 0) {
        ms_unlock(&s->lock);
        return 0;
    }
    uint64_t h = ms_mix(key) & s->mask;
    while (s->slots[h] != key) {
        if (s->slots[h] == 0) {
            ms_unlock(&s->lock);
            return 0;
        }
        h = (h + 1) & s->mask;
    }
    s->count--;
    uint64_t hole = h, j = h;
    for (;;) {
        j = (j + 1) & s->mask;
        uint64_t k = s->slots[j];
        if (k == 0) {
            break;
        }
        uint64_t home = ms_mix(k) & s->mask;
        if (((j - home) & s->mask) >= ((j - hole) & s->mask)) {
            s->slots[hole] = k;
            hole = j;
        }
    }
    s->slots[hole] = 0;
    ms_unlock(&s->lock);
    return 1;
}

/* Recently freed addresses (direct-mapped, lossy): tells a double free from an invalid one. */
#define MS_FREED_SLOTS (1u << 16)
static uint64_t ms_freed[MS_FREED_SLOTS];

static inline uint64_t *ms_freed_slot(uint64_t key)
{
    return &ms_freed[ms_mix(key ^ 0x5bd1e995u) & (MS_FREED_SLOTS - 1)];
}

static inline void ms_freed_note(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    __atomic_store_n(ms_freed_slot(key), key, __ATOMIC_RELAXED);
}

static inline void ms_freed_forget(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    uint64_t *slot = ms_freed_slot(key);
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) == key) {
        __atomic_compare_exchange_n(slot, &key, 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
}

static int ms_freed_seen(void *p)
{
    uint64_t key = (uint64_t)(uintptr_t)p;
    return __atomic_load_n(ms_freed_slot(key), __ATOMIC_RELAXED) == key;
}

/* ------------------------------------------------------------------ the tracer link */

static const ms_ops_t *ms_ops; /* atomic; set by memscope_native_attach */

static inline const ms_ops_t *ms_recorder(void)
{
    const ms_ops_t *ops = __atomic_load_n(&ms_ops, __ATOMIC_ACQUIRE);
    return (ops != NULL && !ms_tls_in) ? ops : NULL;
}

static inline void ms_report(const ms_ops_t *ops, unsigned kind, unsigned domain, void *p,
                             void *old, size_t size, uint64_t ret, unsigned finding, uint64_t tick)
{
    int saved = errno;
    ms_tls_in = 1;
    ops->record(kind, domain, (uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)old, size, ret, finding,
                tick);
    ms_tls_in = 0;
    errno = saved;
}

/* A new heap block p (not NULL) of `size` bytes. */
static inline void ms_born(void *p, size_t size, unsigned kind, uint64_t ret)
{
    ms_live_insert(p);
    ms_freed_forget(p);
    const ms_ops_t *ops = ms_recorder();
    if (ops != NULL) {
        ms_report(ops, kind, MS_DOMAIN_NATIVE, p, NULL, size, ret, MS_FINDING_NONE, 0);
    }
}

/* A free or realloc of p that the live set does not know: count it, report it. */
static void ms_blocked(void *p, int is_realloc, uint64_t ret)
{
    unsigned finding;
    if (is_realloc) {
        finding = MS_FINDING_INVALID_REALLOC;
        __atomic_fetch_add(&ms_count_invalid_realloc, 1, __ATOMIC_RELAXED);
    } else if (ms_freed_seen(p)) {
        finding = MS_FINDING_DOUBLE_FREE;
        __atomic_fetch_add(&ms_count_double, 1, __ATOMIC_RELAXED);
    } else {
        finding = MS_FINDING_INVALID_FREE;
        __atomic_fetch_add(&ms_count_invalid, 1, __ATOMIC_RELAXED);
    }
    const ms_ops_t *ops = ms_recorder();
    if (ops != NULL) {
        ms_report(ops, MS_FREE, MS_DOMAIN_NATIVE, p, NULL, 0, ret, finding, 0);
    }
}

/* ------------------------------------------------------------------ initialization */

static const char *const ms_dlsym_versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17",
                                                "GLIBC_2.0", NULL};

static void ms_die(const char *what)
{
    static const char prefix[] = "memscope native shim: cannot resolve ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, what, strlen(what));
    (void)!write(2, "\n", 1);
    _exit(127);
}

#define MS_RESOLVE(NAME)                                                                           \
    do {                                                                                           \
        *(void **)&real.NAME = real.dlsym(RTLD_NEXT, #NAME);                                       \
        if (real.NAME == NULL) {                                                                   \
            ms_die(#NAME);                                                                         \
        }                                                                                          \
    } while (0)

static void ms_resolve(void)
{
    for (int i = 0; real.dlsym == NULL && ms_dlsym_versions[i] != NULL; i++) {
        *(void **)&real.dlsym = dlvsym(RTLD_NEXT, "dlsym", ms_dlsym_versions[i]);
    }
    if (real.dlsym == NULL) {
        ms_die("dlsym");
    }
    MS_RESOLVE(malloc);
    MS_RESOLVE(calloc);
    MS_RESOLVE(realloc);
    MS_RESOLVE(free);
    MS_RESOLVE(posix_memalign);
    MS_RESOLVE(aligned_alloc);
    MS_RESOLVE(memalign);
    MS_RESOLVE(valloc);
    MS_RESOLVE(pvalloc);
    MS_RESOLVE(mmap);
    MS_RESOLVE(munmap);
    MS_RESOLVE(malloc_usable_size);
    MS_RESOLVE(dlopen);
}

/* Returns 1 when the real functions may be used; 0 when the caller must use the bootstrap
 * buffer (this thread is resolving them). */
static int ms_init_slow(void)
{
    for (;;) {
        int state = __atomic_load_n(&ms_state, __ATOMIC_ACQUIRE);
        if (state == MS_READY) {
            return 1;
        }
        if (ms_tls_boot) {
            return 0;
        }
        int expected = MS_UNINIT;
        if (state == MS_UNINIT &&
            __atomic_compare_exchange_n(&ms_state, &expected, MS_INITIALIZING, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            ms_tls_boot = 1;
            ms_resolve();
            ms_tls_boot = 0;
            __atomic_store_n(&ms_state, MS_READY, __ATOMIC_RELEASE);
            return 1;
        }
        sched_yield(); /* another thread is resolving: it takes microseconds */
    }
}

static inline int ms_ready(void)
{
    return MS_LIKELY(__atomic_load_n(&ms_state, __ATOMIC_ACQUIRE) == MS_READY) || ms_init_slow();
}

static void ms_atfork_prepare(void)
{
    for (int i = 0; i < MS_SHARDS; i++) {
        ms_lock(&ms_shards[i].lock);
    }
}

static void ms_atfork_release(void)
{
    for (int i = 0; i < MS_SHARDS; i++) {
        ms_unlock(&ms_shards[i].lock);
    }
}

/* Late mode's child handler: no lock was taken before fork (see the constructor), so a shard
 * another thread held at that moment may be half-updated. Its lock is released and blocking
 * stops in this child (unknown frees are forwarded); lookups stay within mapped memory. */
static void ms_atfork_child_late(void)
{
    for (int i = 0; i < MS_SHARDS; i++) {
        if (__atomic_load_n(&ms_shards[i].lock, __ATOMIC_RELAXED)) {
            ms_unlock(&ms_shards[i].lock);
            __atomic_store_n(&ms_lost, 1, __ATOMIC_RELAXED);
        }
    }
}

__attribute__((constructor)) static void ms_constructor(void)
{
    ms_ready();
    if (real.dlsym(RTLD_DEFAULT, "malloc") == (void *)&ms_local_malloc) {
        /* Preloaded: registered before anyone else, so its prepare handler runs last, after
         * the tracer's, which may allocate (take shard locks) while holding their locks. */
        pthread_atfork(ms_atfork_prepare, ms_atfork_release, ms_atfork_release);
    } else {
        /* Loaded late (after the tracer registered its handlers): taking the shard locks
         * here would come before the tracer's locks, the reverse of the order hooks nest
         * them in, so nothing is taken before fork. */
        pthread_atfork(NULL, NULL, ms_atfork_child_late);
    }
}

/* ------------------------------------------------------------------ heap hooks */

MS_EXPORT void *malloc(size_t size)
{
    if (MS_UNLIKELY(!ms_ready())) {
        return ms_boot_alloc(size, 16);
    }
    void *p = real.malloc(size);
    if (p != NULL) {
        ms_born(p, size, MS_ALLOC, MS_CALLER());
    }
    return p;
}

MS_EXPORT void *calloc(size_t n, size_t size)
{
    if (MS_UNLIKELY(!ms_ready())) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total)) {
            return NULL;
        }
        return ms_boot_alloc(total, 16);
    }
    void *p = real.calloc(n, size);
    if (p != NULL) {
        ms_born(p, n * size, MS_CALLOC, MS_CALLER());
    }
    return p;
}

MS_EXPORT void free(void *p)
{
    if (p == NULL || ms_in_boot(p) || !ms_ready()) {
        return;
    }
    uint64_t ret = MS_CALLER();
    if (!ms_live_remove(p) && ms_must_block(p)) {
        ms_blocked(p, 0, ret);
        return;
    }
    /* recorded first: once freed, another thread may get the address back */
    const ms_ops_t *ops = ms_recorder();
    if (ops != NULL) {
        ms_report(ops, MS_FREE, MS_DOMAIN_NATIVE, p, NULL, 0, ret, MS_FINDING_NONE, 0);
    }
    ms_freed_note(p);
    real.free(p);
}

static void *ms_realloc_boot(void *old, size_t size, uint64_t ret)
{
    /* a bootstrap block moves to the real heap (or to another bootstrap block) */
    void *p = ms_ready() ? real.malloc(size ? size : 1) : ms_boot_alloc(size, 16);
    if (p == NULL) {
        return NULL;
    }
    size_t keep = ms_boot_size(old);
    memcpy(p, old, keep < size ? keep : size);
    if (!ms_in_boot(p)) {
        ms_born(p, size, MS_ALLOC, ret);
    }
    return p;
}

MS_EXPORT void *realloc(void *old, size_t size)
{
    uint64_t ret = MS_CALLER();
    if (old != NULL && ms_in_boot(old)) {
        return ms_realloc_boot(old, size, ret);
    }
    if (MS_UNLIKELY(!ms_ready())) {
        return old == NULL ? ms_boot_alloc(size, 16) : NULL;
    }
    if (old == NULL) {
        void *p = real.realloc(NULL, size);
        if (p != NULL) {
            ms_born(p, size, MS_ALLOC, ret);
        }
        return p;
    }
    if (!ms_live_remove(old) && ms_must_block(old)) {
        ms_blocked(old, 1, ret);
        errno = ENOMEM;
        return NULL;
    }
    const ms_ops_t *ops = ms_recorder();
    /* stamped before: the old block may be someone else's once realloc returns */
    uint64_t tick = 0;
    if (ops != NULL) {
        ms_tls_in = 1;
        tick = ops->tick();
        ms_tls_in = 0;
    }
    void *p = real.realloc(old, size);
    if (p == NULL) {
        if (size == 0) { /* glibc freed it */
            ms_freed_note(old);
            if (ops != NULL) {
                ms_report(ops, MS_FREE, MS_DOMAIN_NATIVE, old, NULL, 0, ret, 0, tick);
            }
        } else {
            ms_live_insert(old); /* failed: the old block is still valid */
        }
        return NULL;
    }
    ms_live_insert(p);
    ms_freed_forget(p);
    if (ops != NULL) {
        ms_report(ops, MS_REALLOC, MS_DOMAIN_NATIVE, p, old, size, ret, 0, tick);
    }
    return p;
}

MS_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (MS_UNLIKELY(!ms_ready())) {
        void *p = ms_boot_alloc(size, align);
        if (p == NULL) {
            return ENOMEM;
        }
        *out = p;
        return 0;
    }
    int rc = real.posix_memalign(out, align, size);
    if (rc == 0 && *out != NULL) {
        ms_born(*out, size, MS_ALLOC, MS_CALLER());
    }
    return rc;
}

#define MS_ALIGNED_HOOK(NAME, PARAMS, ARGS, ALIGN, SIZE)                                           \
    MS_EXPORT void *NAME PARAMS                                                                    \
    {                                                                                              \
        if (MS_UNLIKELY(!ms_ready())) {                                                            \
            return ms_boot_alloc(SIZE, ALIGN);                                                     \
        }                                                                                          \
        void *p = real.NAME ARGS;                                                                  \
        if (p != NULL) {                                                                           \
            ms_born(p, SIZE, MS_ALLOC, MS_CALLER());                                               \
        }                                                                                          \
        return p;                                                                                  \
    }

MS_ALIGNED_HOOK(aligned_alloc, (size_t align, size_t size), (align, size), align, size)
MS_ALIGNED_HOOK(memalign, (size_t align, size_t size), (align, size), align, size)
MS_ALIGNED_HOOK(valloc, (size_t size), (size), 4096, size)
MS_ALIGNED_HOOK(pvalloc, (size_t size), (size), 4096, size)

MS_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL) {
        return 0;
    }
    if (ms_in_boot(p)) {
        return ms_boot_size(p);
    }
    if (!ms_ready()) {
        return 0;
    }
    return real.malloc_usable_size(p);
}

/* ------------------------------------------------------------------ mmap hooks */

MS_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (MS_UNLIKELY(!ms_ready())) { /* only while resolving: straight to the kernel */
        return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    }
    void *p = real.mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) {
        const ms_ops_t *ops = ms_recorder();
        if (ops != NULL) {
            ms_report(ops, MS_ALLOC, MS_DOMAIN_MMAP, p, NULL, len, MS_CALLER(), 0, 0);
        }
    }
    return p;
}

MS_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

MS_EXPORT int munmap(void *addr, size_t len)
{
    if (MS_UNLIKELY(!ms_ready())) {
        return (int)syscall(SYS_munmap, addr, len);
    }
    const ms_ops_t *ops = ms_recorder();
    if (ops != NULL) {
        ms_report(ops, MS_FREE, MS_DOMAIN_MMAP, addr, NULL, len, MS_CALLER(), 0, 0);
    }
    return real.munmap(addr, len);
}

/* Hidden aliases of the hooks: `&malloc` inside this library goes through the GOT and means
 * the *global* malloc, which is libc's when the shim is not preloaded (late mode); these
 * names always mean the hooks defined here. */
#pragma GCC diagnostic ignored "-Wmissing-attributes" /* aliases need not repeat `leaf` */
#define MS_LOCAL(NAME)                                                                             \
    extern __typeof__(NAME) ms_local_##NAME __attribute__((alias(#NAME), visibility("hidden")));
MS_LOCAL(malloc)
MS_LOCAL(calloc)
MS_LOCAL(realloc)
MS_LOCAL(free)
MS_LOCAL(posix_memalign)
MS_LOCAL(aligned_alloc)
MS_LOCAL(memalign)
MS_LOCAL(valloc)
MS_LOCAL(pvalloc)
MS_LOCAL(malloc_usable_size)
MS_LOCAL(mmap)
MS_LOCAL(munmap)
#undef MS_LOCAL

/* ------------------------------------------------------------------ dlsym */

static void *ms_substitute(void *found)
{
    if (found == NULL) {
        return NULL;
    }
#define MS_SWAP(NAME)                                                                              \
    if (found == (void *)real.NAME) {                                                              \
        return (void *)&ms_local_##NAME;                                                           \
    }
    MS_SWAP(malloc)
    MS_SWAP(calloc)
    MS_SWAP(realloc)
    MS_SWAP(free)
    MS_SWAP(posix_memalign)
    MS_SWAP(aligned_alloc)
    MS_SWAP(memalign)
    MS_SWAP(valloc)
    MS_SWAP(pvalloc)
    MS_SWAP(mmap)
    MS_SWAP(munmap)
#undef MS_SWAP
    return found;
}

MS_EXPORT void *dlsym(void *handle, const char *name)
{
    if (MS_UNLIKELY(!ms_ready())) {
        return NULL;
    }
    if (handle == RTLD_NEXT || handle == RTLD_DEFAULT) {
        /* a sibling call: glibc reads its caller from the return address, which stays the
         * original caller's (checked by tests/test_native_shim.py) */
        return real.dlsym(handle, name);
    }
    return ms_substitute(real.dlsym(handle, name));
}

extern __typeof__(dlsym) ms_local_dlsym __attribute__((alias("dlsym"), visibility("hidden")));

/* ------------------------------------------------------------------ late mode: GOT patching */

/* Used by memscope.init(native=True) in a process that was NOT started with the shim: the
 * tracer dlopens it and calls memscope_native_patch(), which points the GOT entries of every
 * loaded object (but the shim, ld.so and the vDSO) for the functions below at the hooks; the
 * dlopen hook patches each library loaded later. Limits (documented in native_mode.py):
 * function pointers taken before the patch (e.g. a ctypes function looked up earlier) still
 * call libc; blocks allocated before are unknown, so only double frees of blocks freed through
 * the hooks are blocked; dlopen's caller-relative search paths see the shim as the caller. */

#if defined(__x86_64__)
#define MS_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define MS_R_GLOB_DAT R_X86_64_GLOB_DAT
#define MS_CAN_PATCH 1
#elif defined(__aarch64__)
#define MS_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define MS_R_GLOB_DAT R_AARCH64_GLOB_DAT
#define MS_CAN_PATCH 1
#else
#define MS_CAN_PATCH 0
#endif

static void *ms_dlopen_hook(const char *file, int mode);

static const struct {
    const char *name;
    void *hook;
} ms_patches[] = {
    {"malloc", (void *)&ms_local_malloc},
    {"calloc", (void *)&ms_local_calloc},
    {"realloc", (void *)&ms_local_realloc},
    {"free", (void *)&ms_local_free},
    {"posix_memalign", (void *)&ms_local_posix_memalign},
    {"aligned_alloc", (void *)&ms_local_aligned_alloc},
    {"memalign", (void *)&ms_local_memalign},
    {"valloc", (void *)&ms_local_valloc},
    {"pvalloc", (void *)&ms_local_pvalloc},
    {"mmap", (void *)&ms_local_mmap},
    {"mmap64", (void *)&ms_local_mmap},
    {"munmap", (void *)&ms_local_munmap},
    {"malloc_usable_size", (void *)&ms_local_malloc_usable_size},
    {"dlsym", (void *)&ms_local_dlsym},
    {"dlopen", (void *)&ms_dlopen_hook},
};

static uintptr_t ms_self_base; /* the shim's own load address (never patched) */
static pthread_mutex_t ms_patch_lock = PTHREAD_MUTEX_INITIALIZER;

#if MS_CAN_PATCH
static inline uintptr_t ms_dptr(uintptr_t base, ElfW(Addr) value)
{
    /* glibc rebases most dynamic-section pointers in place; the vDSO's are not */
    return value < base ? base + value : value;
}

static int ms_patch_relocs(uintptr_t base, const ElfW(Rela) * rel, size_t bytes,
                           const ElfW(Sym) * symtab, const char *strtab)
{
    int patched = 0;
    for (size_t i = 0; rel != NULL && i < bytes / sizeof(ElfW(Rela)); i++) {
        unsigned long type = ELF64_R_TYPE(rel[i].r_info);
        unsigned long sym = ELF64_R_SYM(rel[i].r_info);
        if ((type != MS_R_JUMP_SLOT && type != MS_R_GLOB_DAT) || sym == 0) {
            continue;
        }
        const char *name = strtab + symtab[sym].st_name;
        for (size_t k = 0; k < sizeof ms_patches / sizeof ms_patches[0]; k++) {
            if (strcmp(name, ms_patches[k].name) == 0) {
                void **slot = (void **)(base + rel[i].r_offset);
                if (*slot != ms_patches[k].hook) {
                    __atomic_store_n(slot, ms_patches[k].hook, __ATOMIC_RELEASE);
                    patched++;
                }
                break;
            }
        }
    }
    return patched;
}

static int ms_patch_object(struct dl_phdr_info *info, size_t size, void *total)
{
    (void)size;
    uintptr_t base = (uintptr_t)info->dlpi_addr;
    const char *name = info->dlpi_name != NULL ? info->dlpi_name : "";
    if (base == ms_self_base || strstr(name, "linux-vdso") != NULL ||
        strstr(name, "ld-linux") != NULL || strstr(name, "/ld-") != NULL) {
        return 0;
    }
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t relro = 0, relro_len = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *)(base + ph->p_vaddr);
        } else if (ph->p_type == PT_GNU_RELRO) {
            relro = base + ph->p_vaddr;
            relro_len = ph->p_memsz;
        }
    }
    if (dyn == NULL) {
        return 0;
    }
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_len = 0, rela_len = 0;
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB:
            symtab = (const ElfW(Sym) *)ms_dptr(base, d->d_un.d_ptr);
            break;
        case DT_STRTAB:
            strtab = (const char *)ms_dptr(base, d->d_un.d_ptr);
            break;
        case DT_JMPREL:
            jmprel = (const ElfW(Rela) *)ms_dptr(base, d->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            jmprel_len = d->d_un.d_val;
            break;
        case DT_RELA:
            rela = (const ElfW(Rela) *)ms_dptr(base, d->d_un.d_ptr);
            break;
        case DT_RELASZ:
            rela_len = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    if (symtab == NULL || strtab == NULL) {
        return 0;
    }
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = relro & ~(uintptr_t)(page - 1), hi = relro + relro_len;
    if (relro_len != 0 && mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) != 0) {
        return 0; /* cannot write its GOT: leave it alone */
    }
    *(int *)total += ms_patch_relocs(base, jmprel, jmprel_len, symtab, strtab);
    *(int *)total += ms_patch_relocs(base, rela, rela_len, symtab, strtab);
    if (relro_len != 0) {
        mprotect((void *)lo, hi - lo, PROT_READ);
    }
    return 0;
}
#endif

static int ms_patch_all(void)
{
    int total = 0;
#if MS_CAN_PATCH
    pthread_mutex_lock(&ms_patch_lock);
    dl_iterate_phdr(ms_patch_object, &total);
    pthread_mutex_unlock(&ms_patch_lock);
#endif
    return total;
}

static void *ms_dlopen_hook(const char *file, int mode)
{
    void *handle = real.dlopen(file, mode);
    if (handle != NULL && __atomic_load_n(&ms_late, __ATOMIC_RELAXED)) {
        ms_patch_all();
    }
    return handle;
}

/* Returns the number of GOT entries patched, 0 when the shim is preloaded (nothing to do),
 * -1 when this architecture is not supported. */
MS_EXPORT int memscope_native_patch(void)
{
    if (!MS_CAN_PATCH || !ms_ready()) {
        return -1;
    }
    if (real.dlsym(RTLD_DEFAULT, "malloc") == (void *)&ms_local_malloc) {
        return 0; /* preloaded: symbol interposition already routes every call here */
    }
    Dl_info info;
    if (dladdr((void *)&memscope_native_patch, &info) == 0) {
        return -1;
    }
    ms_self_base = (uintptr_t)info.dli_fbase;
    __atomic_store_n(&ms_late, 1, __ATOMIC_RELEASE);
    return ms_patch_all();
}

/* ------------------------------------------------------------------ the tracer link */

MS_EXPORT int memscope_native_attach(const ms_ops_t *ops)
{
    if (ops == NULL || ops->abi != MS_ABI || !ms_ready()) {
        return 0;
    }
    __atomic_store_n(&ms_ops, ops, __ATOMIC_RELEASE);
    return MS_ABI;
}

MS_EXPORT void memscope_native_detach(void)
{
    __atomic_store_n(&ms_ops, NULL, __ATOMIC_RELEASE);
}

MS_EXPORT void memscope_native_stats(ms_stats_t *out)
{
    uint64_t live = 0;
    for (int i = 0; i < MS_SHARDS; i++) {
        live += __atomic_load_n(&ms_shards[i].count, __ATOMIC_RELAXED);
    }
    out->live_blocks = live;
    out->double_frees = __atomic_load_n(&ms_count_double, __ATOMIC_RELAXED);
    out->invalid_frees = __atomic_load_n(&ms_count_invalid, __ATOMIC_RELAXED);
    out->invalid_reallocs = __atomic_load_n(&ms_count_invalid_realloc, __ATOMIC_RELAXED);
    out->untracked = __atomic_load_n(&ms_count_untracked, __ATOMIC_RELAXED);
    out->boot_bytes = __atomic_load_n(&ms_boot_used, __ATOMIC_RELAXED);
}
