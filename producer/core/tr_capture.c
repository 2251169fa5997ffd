/* Starting and stopping the capture, numpy's handler, and the fork handlers that keep the C
 * state right in a forked child. Called with the GIL held (through binding.c). */
#include "tr_core.h"

#include <unistd.h>

/* All of these are protected by the GIL (only Python-callable functions touch them). */
static int tr_started;
static int tr_numpy_active;
static int tr_atfork_ready;
static pid_t tr_pid; /* the process the C state belongs to (set at start and in a child) */

static void tr_atfork_prepare(void)
{
    tr_hooks_atfork_prepare();
    tr_buffers_atfork_prepare();
    tr_own_atfork_prepare();
}

static void tr_atfork_parent(void)
{
    tr_own_atfork_parent();
    tr_buffers_atfork_parent();
    tr_hooks_atfork_parent();
}

/* Runs in the child right after fork(), before any Python code: only plain memory work. */
static void tr_atfork_child(void)
{
    tr_own_atfork_child();
    tr_buffers_after_fork_child();
    tr_hooks_after_fork_child();
    tr_stack_reset_emitted();
    tr_drain_after_fork_child();
    tr_pid = getpid();
}

int tr_capture_start(const tr_start_t *o)
{
    if (o->mode < TR_MODE_FULL || o->mode > TR_MODE_HOOKS_ONLY) {
        PyErr_Format(PyExc_ValueError, "unknown capture mode %d", o->mode);
        return -1;
    }
    if (o->sample_bytes < 1 || o->max_buffer < 2 * TR_BLOCK_SIZE) {
        PyErr_Format(PyExc_ValueError, "sample_bytes must be >= 1 and max_buffer_bytes >= %d",
                     2 * TR_BLOCK_SIZE);
        return -1;
    }
    if (tr_started) {
        PyErr_SetString(PyExc_RuntimeError, "capture is already started");
        return -1;
    }
    if (!tr_hooks_layout_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "memscope was built by a compiler whose bit-field "
                                            "layout tr_live_make does not match");
        return -1;
    }
    if (tr_buffers_init() < 0) {
        return -1;
    }
    if (!tr_atfork_ready) {
        if (pthread_atfork(tr_atfork_prepare, tr_atfork_parent, tr_atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return -1;
        }
        tr_atfork_ready = 1;
    }
    tr_clock_init();
    tr_pid = getpid();
    int arena = tr_buffers_arena(tr_draining ? NULL : o->arena_dir);
    if (arena < 0) {
        PyErr_SetString(PyExc_MemoryError, "no memory for the tracer's buffers");
        return -1;
    }
    tr_clock_t now; /* until the first drain, a harvest maps ticks with this reading */
    tr_clock_now(&now);
    tr_arena_note_clock(&now);
    if (o->numpy) {
        int rc = tr_numpy_install();
        if (rc < 0) {
            return -1;
        }
        tr_numpy_active = rc;
    }
    tr_mode = o->mode;
    tr_reuse_stamps = o->reuse_stamps;
    tr_sample_bytes = o->sample_bytes;
    tr_max_buffer_bytes = o->max_buffer;
    tr_hooks_reset_maps();
    tr_buffers_reset_high_water();
    if (tr_hooks_install() < 0) {
        return -1;
    }
    tr_started = 1;
    __atomic_store_n(&tr_enabled, 1, __ATOMIC_RELEASE);
    return 0;
}

void tr_capture_stop(void)
{
    if (!tr_started) {
        return;
    }
    __atomic_store_n(&tr_enabled, 0, __ATOMIC_RELEASE);
    tr_hooks_uninstall();
    if (tr_numpy_active) {
        tr_numpy_uninstall();
        tr_numpy_active = 0;
    }
    tr_started = 0;
}

int tr_capture_active(void)
{
    return tr_started;
}

int tr_capture_numpy_traced(void)
{
    return tr_numpy_active;
}

/* numpy imported after start (capture's import watcher): trace its data memory from now. */
int tr_capture_numpy_install(void)
{
    if (tr_started && !tr_numpy_active) {
        int rc = tr_numpy_install();
        if (rc < 0) {
            return -1;
        }
        tr_numpy_active = rc;
    }
    return tr_numpy_active;
}

void tr_capture_after_fork_child(void)
{
    /* The pthread_atfork child handler has already reset the C state; this only acts in a
     * process the state does not belong to (e.g. a fork done while the handler was not yet
     * registered), so calling it twice, or in the parent, changes nothing. */
    if (tr_pid != 0 && tr_pid != getpid()) {
        tr_atfork_child();
    }
}
