/* The record codes of rec1.h as Python module constants, for every C module that exports them
 * (memscope.producer._tracer and memscope.protocol._rec1). Include after Python.h. */
#ifndef MEMSCOPE_REC1_PY_H
#define MEMSCOPE_REC1_PY_H

#include "rec1.h"

/* Adds KIND_*, DOMAIN_* and REC1_HEADER: the codes as C compiles them (rec1.h). */
static inline int rec1_add_constants(PyObject *m)
{
    return PyModule_AddIntConstant(m, "KIND_ALLOC", TR_ALLOC) < 0 ||
                   PyModule_AddIntConstant(m, "KIND_CALLOC", TR_CALLOC) < 0 ||
                   PyModule_AddIntConstant(m, "KIND_REALLOC", TR_REALLOC) < 0 ||
                   PyModule_AddIntConstant(m, "KIND_FREE", TR_FREE) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_RAW", TR_RAW) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_MEM", TR_MEM) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_OBJ", TR_OBJ) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_NUMPY", TR_NUMPY) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_NATIVE", TR_NATIVE) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_MMAP", TR_MMAP) < 0 ||
                   PyModule_AddIntConstant(m, "DOMAIN_MAX", TR_DOMAIN_MAX) < 0 ||
                   PyModule_AddIntConstant(m, "REC1_HEADER", TR_REC1_HEADER) < 0
               ? -1
               : 0;
}

#endif
