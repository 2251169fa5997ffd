/* memscope's native core: allocator hooks, per-thread buffers and the drain call.
 * (Being written; this file only defines the module so that the package builds.) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef tracer_module = {
    PyModuleDef_HEAD_INIT, "_tracer", "memscope's native tracer core.", -1, NULL,
};

PyMODINIT_FUNC PyInit__tracer(void) { return PyModule_Create(&tracer_module); }
