/* memscope native mode: the interface between the preloaded allocator shim
 * (producer/core/preload/ms_preload.c, built as memscope/producer/_memscope_preload*.so) and the
 * tracer core (producer/core/tr_native_mode.c, inside memscope.producer._tracer).
 *
 * The shim is loaded with LD_PRELOAD into every process of a `memscope run --native` (Python
 * or not). It exports three functions that the tracer finds with dlsym(RTLD_DEFAULT, ...):
 *
 *   int  memscope_native_attach(const ms_ops_t *ops)  -> MS_ABI (0 when ops->abi differs)
 *   void memscope_native_detach(void)
 *   void memscope_native_stats(ms_stats_t *out)
 *   int  memscope_native_patch(void)   late mode: patch the loaded objects' GOTs
 *
 * While attached, each intercepted call that is not made from inside the tracer itself calls
 * ops->record() after the real function (before it, for free and munmap). ops->record() runs
 * inside malloc: it must not do I/O, call Python, or take a lock that is held around malloc.
 * The shim never holds one of its own locks while it calls ops->record().
 */
#ifndef MEMSCOPE_MS_PRELOAD_H
#define MEMSCOPE_MS_PRELOAD_H

#include <stdint.h>

#define MS_ABI 1

/* Kinds and domains: the codes of protocol/rec1.h (the one C definition). */
#include "rec1.h"
enum { MS_ALLOC = TR_ALLOC, MS_CALLOC = TR_CALLOC, MS_REALLOC = TR_REALLOC, MS_FREE = TR_FREE };
enum { MS_DOMAIN_NATIVE = TR_NATIVE, MS_DOMAIN_MMAP = TR_MMAP };

/* What a record proves besides the event itself (0 = nothing). A finding's free or realloc
 * was NOT forwarded to the C library: the shim blocked it so the process survives. */
enum {
    MS_FINDING_NONE = 0,
    MS_FINDING_DOUBLE_FREE = 1,     /* free of a block already freed (and not reallocated) */
    MS_FINDING_INVALID_FREE = 2,    /* free of an address malloc never returned */
    MS_FINDING_INVALID_REALLOC = 3, /* realloc of an address malloc never returned / freed */
};

typedef struct {
    uint32_t abi; /* MS_ABI */
    /* The tracer's clock (used to stamp a realloc before the real call). */
    uint64_t (*tick)(void);
    /* One event. `ret` is the return address in the caller of the intercepted function;
     * `tick` is 0 (stamp now) or a value of tick() taken before the real call. */
    void (*record)(unsigned kind, unsigned domain, uint64_t addr, uint64_t old_addr, uint64_t size,
                   uint64_t ret, unsigned finding, uint64_t tick);
} ms_ops_t;

typedef struct {
    uint64_t live_blocks;  /* heap blocks the shim knows to be allocated now */
    uint64_t double_frees; /* blocked frees, by finding (counted attached or not) */
    uint64_t invalid_frees;
    uint64_t invalid_reallocs;
    uint64_t untracked;  /* blocks the live set could not hold (it then stops blocking) */
    uint64_t boot_bytes; /* bytes served from the static bootstrap buffer */
} ms_stats_t;

typedef int (*ms_attach_fn)(const ms_ops_t *ops);
typedef void (*ms_detach_fn)(void);
typedef void (*ms_stats_fn)(ms_stats_t *out);
typedef int (*ms_patch_fn)(void);

#endif
