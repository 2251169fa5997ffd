/* The arena: one mapping that holds every record block and thread state of the process.
 *
 * Why: a process that dies without warning (SIGKILL, the OOM killer, a segfault, os._exit)
 * used to take with it whatever its threads had recorded since the last drain. With a
 * directory (memscope run gives one on tmpfs), the arena is a file mapped MAP_SHARED: the
 * records stay in the file when the process is gone, and the supervisor harvests them
 * (tr_py_harvest, run by memscope.producer.harvest) from each thread's committed cursor,
 * the point up to which its records are in a batch the publisher had written to its spool.
 *
 * Layout: slot 0 is the header (below); slots 1.. are TR_SLOT_SIZE bytes each, a block or a
 * thread state, their kinds in the header's `kinds` so a reader finds the thread states.
 * Pointers inside the arena are the owner's addresses; a reader rebases them by `base`.
 *
 * Liveness: the owner holds an exclusive flock on the file for as long as it lives (the
 * kernel drops it when the process dies, however it dies); a harvester that gets the lock
 * knows the owner is gone. The file is created under a temporary name and renamed once
 * locked, so no harvester ever sees an unlocked live arena.
 *
 * Memory: slots are taken from two free stacks, memory-backed ones first; at most
 * TR_KEEP_BACKED free slots keep their memory, the others give it back (hole punched in the
 * file, or pages dropped). A file slot is fallocate()d before first use, so a full tmpfs
 * means a dropped record (counted), never a SIGBUS in the program.
 *
 * Concurrency: the slot stacks are protected by tr_registry_lock (tr_buffer.c holds it
 * around every call); the header's clock and seq are written by the drain and the commit
 * (GIL held).
 */
#include "tr_core.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TR_ARENA_MAGIC 0x31616e6572616d73ull /* "smarena1" */
#define TR_ARENA_VERSION 1u
#define TR_KEEP_BACKED 128 /* free slots that keep their memory (8 MiB) */
/* Slots of every arena, whatever start()'s max_buffer_bytes (which bounds the blocks in use
 * and may change from one start to the next): 3.7 GiB of address space, sparse. */
#define TR_MAX_SLOTS 60000

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t slot_size;
    uint32_t nslots;      /* slots including the header's */
    uint32_t thread_size; /* sizeof(tr_thread_t): a reader built otherwise refuses */
    uint64_t base;        /* the owner's address of the mapping */
    int64_t pid;
    uint64_t next_seqs[2]; /* the seq of the next batch (every earlier one is spooled), ... */
    uint32_t commit_index; /* ... and the threads' cursor copy, of the last whole commit */
    uint32_t pad;
    tr_clock_t clocks[2]; /* the latest reference reading, ... */
    uint32_t clock_index; /* ... the whole copy named last */
    uint32_t closed;      /* the owner closed it: everything is shipped or spooled */
    char producer[256];
    char spool[1024];
    char address[512];
    uint8_t kinds[]; /* nslots entries of TR_SLOT_* */
} tr_arena_hdr_t;

/* The owner's arena (set once; replaced only in a forked child, at the same address). */
static uint8_t *tr_arena;
static size_t tr_arena_size;
static uint32_t tr_nslots;
static int tr_arena_fd = -1; /* -1: anonymous */
static char tr_arena_dir[512];
static char tr_arena_file[600];
/* Free slot ids: backed ones (memory kept) and bare ones (memory given back). */
static uint32_t *tr_free_backed, *tr_free_bare;
static uint32_t tr_n_backed, tr_n_bare;

static inline tr_arena_hdr_t *tr_hdr(void)
{
    return (tr_arena_hdr_t *)tr_arena;
}

int tr_arena_ready(void)
{
    return tr_arena != NULL;
}

/* Every slot not in use is free (and bare), e.g. after the mapping changed under them. */
static void tr_arena_reset_free_except_used(void)
{
    tr_n_backed = tr_n_bare = 0;
    for (uint32_t id = tr_nslots - 1; id >= 1; id--) {
        if (tr_hdr()->kinds[id] == TR_SLOT_FREE) {
            tr_free_bare[tr_n_bare++] = id;
        }
    }
}

static int tr_back_fd(int fd, uint32_t id);

static int tr_file_arena(const char *dir, size_t size)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/.%d-%llu.tmp", dir, (int)getpid(),
             (unsigned long long)tr_monotonic_ns());
    snprintf(tr_arena_file, sizeof tr_arena_file, "%s/%d-%llu.arena", dir, (int)getpid(),
             (unsigned long long)tr_monotonic_ns());
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || ftruncate(fd, (off_t)size) != 0 ||
        fallocate(fd, 0, 0, TR_SLOT_SIZE) != 0 || rename(tmp, tr_arena_file) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    return fd;
}

static void tr_arena_write_header(void)
{
    tr_arena_hdr_t *h = tr_hdr();
    memset(h, 0, TR_SLOT_SIZE);
    h->magic = TR_ARENA_MAGIC;
    h->version = TR_ARENA_VERSION;
    h->slot_size = TR_SLOT_SIZE;
    h->nslots = tr_nslots;
    h->thread_size = (uint32_t)sizeof(tr_thread_t);
    h->base = (uint64_t)(uintptr_t)tr_arena;
    h->pid = (int64_t)getpid();
}

int tr_arena_init(void)
{
    if (tr_arena != NULL) {
        return 0;
    }
    uint32_t nslots = TR_MAX_SLOTS;
    size_t size = (size_t)nslots * TR_SLOT_SIZE;
    uint32_t *backed = tr_raw_alloc(nslots * sizeof(uint32_t));
    uint32_t *bare = tr_raw_alloc(nslots * sizeof(uint32_t));
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (backed == NULL || bare == NULL || p == MAP_FAILED) {
        tr_raw_free(backed);
        tr_raw_free(bare);
        if (p != MAP_FAILED) {
            munmap(p, size);
        }
        return -1;
    }
    tr_nslots = nslots;
    tr_arena_size = size;
    tr_free_backed = backed;
    tr_free_bare = bare;
    tr_arena = p;
    tr_arena_write_header();
    tr_arena_reset_free_except_used();
    return 0;
}

/* Replaces the mapping at the same address by the new file `fd` holding a copy of every slot
 * in use (and the header); the slots' memory is copied through the old mapping first. */
static int tr_arena_swap_to_file(int fd)
{
    for (uint32_t id = 0; id < tr_nslots; id++) {
        if (id != 0 && tr_hdr()->kinds[id] == TR_SLOT_FREE) {
            continue;
        }
        uint8_t *slot = tr_arena + (size_t)id * TR_SLOT_SIZE;
        if (tr_back_fd(fd, id) < 0 ||
            pwrite(fd, slot, TR_SLOT_SIZE, (off_t)id * TR_SLOT_SIZE) != TR_SLOT_SIZE) {
            return -1;
        }
    }
    void *p = mmap(tr_arena, tr_arena_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    return p == MAP_FAILED ? -1 : 0;
}

int tr_arena_use_dir(const char *dir)
{
    if (tr_arena == NULL || tr_arena_fd >= 0 || dir == NULL || dir[0] == '\0') {
        return 0; /* nothing asked, or a file already (a later start) */
    }
    if (strlen(dir) >= sizeof tr_arena_dir) {
        return -1;
    }
    strcpy(tr_arena_dir, dir);
    int fd = tr_file_arena(dir, tr_arena_size);
    if (fd < 0) {
        return -1;
    }
    if (tr_arena_swap_to_file(fd) < 0) {
        /* the anonymous mapping is still in place (MAP_FIXED replaces it only on success) */
        unlink(tr_arena_file);
        tr_arena_file[0] = '\0';
        close(fd);
        return -1;
    }
    tr_arena_fd = fd;
    /* free slots are all bare in the file: their old memory went with the old mapping */
    tr_arena_reset_free_except_used();
    return 0;
}

/* Gives memory to slot `id` of the file `fd` before its first use (a full tmpfs: -1). */
static int tr_back_fd(int fd, uint32_t id)
{
    return fallocate(fd, 0, (off_t)id * TR_SLOT_SIZE, TR_SLOT_SIZE) == 0 ? 0 : -1;
}

static int tr_back(uint32_t id)
{
    return tr_arena_fd < 0 ? 0 : tr_back_fd(tr_arena_fd, id);
}

void *tr_arena_get(int kind)
{
    uint32_t id;
    if (tr_n_backed > 0) {
        id = tr_free_backed[--tr_n_backed];
    } else if (tr_n_bare > 0) {
        id = tr_free_bare[tr_n_bare - 1];
        if (tr_back(id) < 0) {
            return NULL;
        }
        tr_n_bare--;
    } else {
        return NULL;
    }
    uint8_t *slot = tr_arena + (size_t)id * TR_SLOT_SIZE;
    if (kind == TR_SLOT_THREAD) {
        /* every field starts at 0 (a bare slot is zeroes only where punching holes works) */
        memset(slot, 0, sizeof(tr_thread_t));
    }
    tr_hdr()->kinds[id] = (uint8_t)kind;
    return slot;
}

void tr_arena_put(void *slot)
{
    uint32_t id = (uint32_t)(((uint8_t *)slot - tr_arena) / TR_SLOT_SIZE);
    tr_hdr()->kinds[id] = TR_SLOT_FREE;
    if (tr_n_backed < TR_KEEP_BACKED) {
        tr_free_backed[tr_n_backed++] = id;
        return;
    }
    int released = tr_arena_fd >= 0
                       ? fallocate(tr_arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   (off_t)id * TR_SLOT_SIZE, TR_SLOT_SIZE)
                       : madvise(slot, TR_SLOT_SIZE, MADV_DONTNEED);
    if (released != 0) {
        tr_free_backed[tr_n_backed++] = id; /* (no hole punching here: the memory stays) */
        return;
    }
    tr_free_bare[tr_n_bare++] = id;
}

void tr_arena_note_clock(const tr_clock_t *clock)
{
    if (tr_arena == NULL) {
        return;
    }
    tr_arena_hdr_t *h = tr_hdr();
    uint32_t next = h->clock_index ^ 1u;
    h->clocks[next] = *clock;
    __atomic_store_n(&h->clock_index, next, __ATOMIC_RELEASE);
}

uint32_t tr_arena_commit_index(void)
{
    return tr_arena ? tr_hdr()->commit_index & 1u : 0;
}

uint64_t tr_arena_next_seq(void)
{
    return tr_arena ? tr_hdr()->next_seqs[tr_hdr()->commit_index & 1u] : 0;
}

void tr_arena_publish_commit(uint32_t index, uint64_t next_seq)
{
    if (tr_arena != NULL) {
        tr_hdr()->next_seqs[index & 1u] = next_seq;
        __atomic_store_n(&tr_hdr()->commit_index, index & 1u, __ATOMIC_RELEASE);
    }
}

/* ------------------------------------------------------------------------------ fork */

/* The forking thread's state, copied before the fork (tr_arena_before_fork): in the child,
 * the shared slot may be changing already, written by the same thread in the parent. */
static tr_thread_t tr_fork_saved;
static int tr_fork_saved_ok;

void tr_arena_before_fork(const tr_thread_t *self)
{
    tr_fork_saved_ok = 0;
    if (tr_arena_fd >= 0 && self != NULL) {
        memcpy(&tr_fork_saved, self, sizeof tr_fork_saved);
        tr_fork_saved_ok = 1;
    }
}

void tr_arena_after_fork_child(tr_thread_t *keep_thread)
{
    if (tr_arena == NULL) {
        return;
    }
    /* the survivor's block as it was at the fork: in a file arena the slot's `cur` may have
     * moved on since, written by the same thread in the parent */
    tr_block_t *keep_block = NULL;
    if (keep_thread != NULL) {
        keep_block = tr_arena_fd >= 0 && tr_fork_saved_ok ? tr_fork_saved.cur : keep_thread->cur;
    }
    uint32_t keep_t = 0, keep_b = 0;
    if (keep_thread != NULL) {
        keep_t = (uint32_t)(((uint8_t *)keep_thread - tr_arena) / TR_SLOT_SIZE);
    }
    if (keep_block != NULL) {
        keep_b = (uint32_t)(((uint8_t *)keep_block - tr_arena) / TR_SLOT_SIZE);
    }
    if (tr_arena_fd >= 0) {
        /* the parent's file stays the parent's: this child maps a file of its own at the same
         * address, so every pointer into the arena stays valid */
        close(tr_arena_fd); /* (the parent's lock stays with the parent's descriptor) */
        tr_arena_fd = tr_file_arena(tr_arena_dir, tr_arena_size);
        void *p = MAP_FAILED;
        if (tr_arena_fd >= 0) {
            p = mmap(tr_arena, tr_arena_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                     tr_arena_fd, 0);
            if (p == MAP_FAILED || (keep_t && tr_back(keep_t) < 0) ||
                (keep_b && tr_back(keep_b) < 0)) {
                unlink(tr_arena_file);
                close(tr_arena_fd);
                tr_arena_fd = -1;
                p = MAP_FAILED;
            }
        }
        if (p == MAP_FAILED) {
            tr_arena_file[0] = '\0';
            p = mmap(tr_arena, tr_arena_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
            if (p == MAP_FAILED) {
                /* the parent's file is still mapped here: this child must not write to it */
                __atomic_store_n(&tr_enabled, 0, __ATOMIC_RELEASE);
                tr_fork_saved_ok = 0;
                return;
            }
        }
        if (keep_thread != NULL && tr_fork_saved_ok) {
            memcpy(keep_thread, &tr_fork_saved, sizeof tr_fork_saved);
        }
    } else {
        /* anonymous: the copy is private already; give back the memory of every other slot
         * (in use or free: a bare slot must read as zeroes), in the runs between the kept */
        uint32_t start = 1;
        for (uint32_t id = 1; id <= tr_nslots; id++) {
            if (id == tr_nslots || id == keep_t || id == keep_b) {
                if (id > start) {
                    madvise(tr_arena + (size_t)start * TR_SLOT_SIZE,
                            (size_t)(id - start) * TR_SLOT_SIZE, MADV_DONTNEED);
                }
                start = id + 1;
            }
        }
    }
    tr_arena_write_header();
    tr_clock_t now; /* a harvest of a child dead before its first drain maps ticks with it */
    tr_clock_now(&now);
    tr_arena_note_clock(&now);
    if (keep_t) {
        tr_hdr()->kinds[keep_t] = TR_SLOT_THREAD;
    }
    if (keep_b) {
        tr_hdr()->kinds[keep_b] = TR_SLOT_BLOCK;
    }
    tr_arena_reset_free_except_used(); /* (every slot but the two marked above) */
}

/* ------------------------------------------------------------------ Python: the owner */

/* arena_identify(producer, spool, address): who the arena's records belong to and where
 * they go (written into the header for a harvester). */
PyObject *tr_py_arena_identify(PyObject *self, PyObject *args)
{
    const char *producer, *spool, *address;
    if (!PyArg_ParseTuple(args, "sss", &producer, &spool, &address)) {
        return NULL;
    }
    if (tr_arena != NULL) {
        tr_arena_hdr_t *h = tr_hdr();
        snprintf(h->producer, sizeof h->producer, "%s", producer);
        snprintf(h->spool, sizeof h->spool, "%s", spool);
        snprintf(h->address, sizeof h->address, "%s", address);
    }
    Py_RETURN_NONE;
}

/* arena_path() -> the arena's file, or None (anonymous). */
PyObject *tr_py_arena_path(PyObject *self, PyObject *noargs)
{
    if (tr_arena == NULL || tr_arena_fd < 0 || tr_arena_file[0] == '\0') {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeFSDefault(tr_arena_file);
}

/* arena_close(remove) -> None: the owner is done; with `remove`, everything it recorded is
 * in the broker's log and the file goes (the mapping stays in use, now anonymous-like). */
PyObject *tr_py_arena_close(PyObject *self, PyObject *args)
{
    int remove = 1;
    if (!PyArg_ParseTuple(args, "|p", &remove)) {
        return NULL;
    }
    if (tr_arena != NULL && tr_arena_fd >= 0) {
        __atomic_store_n(&tr_hdr()->closed, 1u, __ATOMIC_RELEASE);
        if (remove && tr_arena_file[0] != '\0') {
            unlink(tr_arena_file);
            tr_arena_file[0] = '\0';
        }
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ Python: the harvester */

typedef struct {
    const uint8_t *map;
    size_t size;
    uint64_t base;
} tr_view_t;

/* The reader's address of an owner's pointer to a slot's start, or NULL if it is none. */
static const uint8_t *tr_view_slot(const tr_view_t *v, const void *owner_ptr, uint32_t nslots)
{
    uint64_t at = (uint64_t)(uintptr_t)owner_ptr;
    if (at < v->base + TR_SLOT_SIZE || at >= v->base + (uint64_t)nslots * TR_SLOT_SIZE ||
        (at - v->base) % TR_SLOT_SIZE != 0 || at - v->base + TR_SLOT_SIZE > v->size) {
        return NULL;
    }
    return v->map + (at - v->base);
}

/* Appends one chunk {"tid", "n", "enc", "data"} of the records of [src, src+len). */
static int tr_harvest_piece(PyObject *chunks, uint64_t tid, const uint8_t *src, size_t len,
                            tr_delta_t base, const tr_clock_t *clock, uint64_t *events,
                            int64_t *last_ns)
{
    tr_scan_t scan;
    size_t took = tr_rec1_scan_checked(src, len, base, &scan);
    if (scan.n == 0) {
        return 0;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(TR_REC1_HEADER + took));
    if (data == NULL) {
        return -1;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(data);
    tr_write_header(out, scan.n, base, clock);
    memcpy(out + TR_REC1_HEADER, src, took);
    PyObject *chunk = Py_BuildValue("{s:K,s:K,s:s,s:N}", "tid", (unsigned long long)tid, "n",
                                    (unsigned long long)scan.n, "enc", "rec1", "data", data);
    if (chunk == NULL || PyList_Append(chunks, chunk) < 0) {
        Py_XDECREF(chunk);
        return -1;
    }
    Py_DECREF(chunk);
    *events += scan.n;
    int64_t ns = tr_tick_to_ns(clock, scan.max_tick);
    if (ns > *last_ns) {
        *last_ns = ns;
    }
    return 0;
}

/* The records of one dead thread state from its committed cursor on. `seen` marks the blocks
 * taken already (by any thread): a damaged file's chains never make a block count twice. */
static int tr_harvest_thread(const tr_view_t *v, const tr_arena_hdr_t *h, const tr_thread_t *t,
                             const tr_clock_t *last_drain, uint8_t *seen, PyObject *chunks,
                             uint64_t *events, int64_t *last_ns)
{
    /* the mapping of the thread's last shipped chunk carries on (as the drain's would) */
    tr_clock_t clock = t->dclock_set && t->dclock.mult ? t->dclock : *last_drain;
    tr_cursor_t c = t->committed[h->commit_index & 1u];
    const uint8_t *b = tr_view_slot(v, c.block, h->nslots);
    uint32_t pos = c.pos;
    tr_delta_t d = c.d;
    const uint8_t *cur = tr_view_slot(v, t->cur, h->nslots);
    while (b != NULL) {
        size_t id = (size_t)(b - v->map) / TR_SLOT_SIZE;
        if (seen[id] || h->kinds[id] != TR_SLOT_BLOCK) {
            break;
        }
        seen[id] = 1;
        const tr_block_t *blk = (const tr_block_t *)b;
        uint32_t used = blk->used;
        if (blk->next == NULL) {
            /* the block being written: its writer's pos says how far */
            uint64_t at = (uint64_t)(uintptr_t)t->pos;
            uint64_t owner_data = v->base + (uint64_t)(b - v->map) + offsetof(tr_block_t, data);
            if (b == cur && at >= owner_data && at <= owner_data + TR_BLOCK_DATA) {
                used = (uint32_t)(at - owner_data);
            }
        }
        if (used > TR_BLOCK_DATA) {
            break;
        }
        if (pos < used && tr_harvest_piece(chunks, t->tid, blk->data + pos, used - pos, d, &clock,
                                           events, last_ns) < 0) {
            return -1;
        }
        if (blk->next == NULL) {
            break;
        }
        b = tr_view_slot(v, blk->next, h->nslots);
        pos = 0;
        memset(&d, 0, sizeof d);
    }
    return 0;
}

/* harvest(path) -> dict: what a dead owner's arena holds past its committed cursors:
 * pid, producer, spool, address, next_seq, closed, chunks (rec1, as the drain makes them),
 * events, last_ns (the latest record's time, or the last clock reading), threads (tids). */
PyObject *tr_py_harvest(PyObject *self, PyObject *args)
{
    PyObject *path_obj;
    if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path_obj)) {
        return NULL;
    }
    const char *path = PyBytes_AS_STRING(path_obj);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    Py_DECREF(path_obj);
    if (fd < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < TR_SLOT_SIZE) {
        close(fd);
        return PyErr_Format(PyExc_ValueError, "not a memscope arena (too small)");
    }
    const uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    tr_view_t v = {map, (size_t)st.st_size, 0};
    const tr_arena_hdr_t *h = (const tr_arena_hdr_t *)map;
    PyObject *result = NULL, *chunks = NULL, *threads = NULL;
    uint8_t *seen = NULL;
    if (h->magic != TR_ARENA_MAGIC || h->version != TR_ARENA_VERSION ||
        h->slot_size != TR_SLOT_SIZE || h->thread_size != sizeof(tr_thread_t) || h->nslots < 2 ||
        h->nslots > TR_MAX_SLOTS || (size_t)h->nslots * TR_SLOT_SIZE > v.size) {
        PyErr_Format(PyExc_ValueError, "not a memscope arena of this version");
        goto done;
    }
    v.base = h->base;
    tr_clock_t clock = h->clocks[h->clock_index & 1u];
    chunks = PyList_New(0);
    threads = PyList_New(0);
    if (chunks == NULL || threads == NULL) {
        goto done;
    }
    uint64_t events = 0;
    int64_t last_ns = clock.ns;
    seen = PyMem_RawCalloc(h->nslots, 1);
    if (seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t id = 1; id < h->nslots; id++) {
        if (h->kinds[id] != TR_SLOT_THREAD) {
            continue;
        }
        const tr_thread_t *t = (const tr_thread_t *)(map + (size_t)id * TR_SLOT_SIZE);
        PyObject *tid = PyLong_FromUnsignedLongLong(t->tid);
        if (tid == NULL || PyList_Append(threads, tid) < 0) {
            Py_XDECREF(tid);
            goto done;
        }
        Py_DECREF(tid);
        if (tr_harvest_thread(&v, h, t, &clock, seen, chunks, &events, &last_ns) < 0) {
            goto done;
        }
    }
    char producer[sizeof h->producer], spool[sizeof h->spool], address[sizeof h->address];
    snprintf(producer, sizeof producer, "%.*s", (int)sizeof producer - 1, h->producer);
    snprintf(spool, sizeof spool, "%.*s", (int)sizeof spool - 1, h->spool);
    snprintf(address, sizeof address, "%.*s", (int)sizeof address - 1, h->address);
    result = Py_BuildValue("{s:L,s:s,s:s,s:s,s:K,s:O,s:O,s:O,s:K,s:L}", "pid", (long long)h->pid,
                           "producer", producer, "spool", spool, "address", address, "next_seq",
                           (unsigned long long)h->next_seqs[h->commit_index & 1u], "closed",
                           h->closed ? Py_True : Py_False, "chunks", chunks, "threads", threads,
                           "events", (unsigned long long)events, "last_ns", (long long)last_ns);
done:
    PyMem_RawFree(seen);
    Py_XDECREF(chunks);
    Py_XDECREF(threads);
    munmap((void *)map, v.size);
    return result;
}
