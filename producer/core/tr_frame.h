/* memscope tracer: the interpreter's frame chain, for the files that read it (tr_stack.c walks
 * it; tr_record.h reads the GIL's switch counter).
 *
 * Version guards: CPython 3.11 and 3.12 reach the innermost frame through
 * tstate->cframe->current_frame and name the code `f_code` and the instruction `prev_instr`;
 * 3.13 uses tstate->current_frame, `f_executable` and `instr_ptr`; 3.12+ has C-stack shim
 * frames (FRAME_OWNED_BY_CSTACK).
 */
#ifndef MEMSCOPE_TR_FRAME_H
#define MEMSCOPE_TR_FRAME_H

#include "tr_core.h"

#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#if PY_VERSION_HEX < 0x030C0000
#undef _PyGC_FINALIZED               /* objimpl.h and pycore_gc.h both define it (3.11) */
#include <internal/pycore_pystate.h> /* 3.11: the inline _PyThreadState_GET() */
#endif
#undef Py_BUILD_CORE

#if PY_VERSION_HEX >= 0x030D0000
#define TR_FRAME_CODE(f) ((f)->f_executable)
#define TR_FRAME_INSTR(f) ((f)->instr_ptr)
#define TR_TSTATE_FRAME(ts) ((ts)->current_frame)
#else
#define TR_FRAME_CODE(f) ((PyObject *)(f)->f_code)
#define TR_FRAME_INSTR(f) ((f)->prev_instr)
#define TR_TSTATE_FRAME(ts) ((ts)->cframe->current_frame)
#endif

/* The thread state holding the GIL (callers hold it). */
static inline PyThreadState *tr_tstate(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_UncheckedGet();
#else
    return _PyThreadState_GET();
#endif
}

/* How many times the GIL has changed hands (3.11; 0 elsewhere). Read with the GIL held. */
static inline unsigned long tr_gil_switches_now(void)
{
#if PY_VERSION_HEX < 0x030C0000
    return __atomic_load_n(&_PyRuntime.ceval.gil.switch_number, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

#endif
