/* memscope native mode, tracer side (producer/core/tr_native_mode.c): the hooks the tracer's own
 * files call. Each call site in tr_drain.c / tr_stack.c is marked "native mode hook". */
#ifndef MEMSCOPE_TR_NATIVE_MODE_H
#define MEMSCOPE_TR_NATIVE_MODE_H

#include "tr_core.h"

#define TR_NM_ID_BASE 0x40000000u

/* Python-callable: native_attach(path=None), native_detach(), native_stats() (GIL held). */
PyObject *tr_nm_py_attach(PyObject *self, PyObject *args);
PyObject *tr_nm_py_detach(PyObject *self, PyObject *noargs);
PyObject *tr_nm_py_stats(PyObject *self, PyObject *noargs);

/* Drain: adds the native frames (`frames` and `stacks` rows) and `ffi` rows for the native
 * findings (double/invalid frees); GIL held. */
int tr_nm_emit(PyObject *rare);

/* tr_stack.c: the calling thread's own frames without the GIL, outermost first; the depth. */
int tr_stack_walk_own(const void **code, const void **instr);
/* tr_stack.c: line of an instruction in a code object (GIL held). */
int tr_stack_lineno(PyObject *code, const void *instr);

#endif
