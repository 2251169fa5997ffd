/* Rows of the drain's rare tables: {table: {column: [values]}}, one append at a time. */
#include "tr_core.h"

/* Appends one row (steals the references in `values`; a NULL among them is a failed
 * allocation: nothing is appended and -1 returned with the Python error set). */
int tr_append_row(PyObject *rare, const char *table, const char *const *names, PyObject **values,
                  int n)
{
    int rc = -1;
    for (int i = 0; i < n; i++) {
        if (values[i] == NULL) {
            goto done;
        }
    }
    PyObject *columns = PyDict_GetItemString(rare, table);
    if (columns == NULL) {
        columns = PyDict_New();
        if (columns == NULL || PyDict_SetItemString(rare, table, columns) < 0) {
            Py_XDECREF(columns);
            goto done;
        }
        Py_DECREF(columns); /* borrowed from rare from now on */
    }
    for (int i = 0; i < n; i++) {
        PyObject *list = PyDict_GetItemString(columns, names[i]);
        if (list == NULL) {
            list = PyList_New(0);
            if (list == NULL || PyDict_SetItemString(columns, names[i], list) < 0) {
                Py_XDECREF(list);
                goto done;
            }
            Py_DECREF(list);
        }
        if (PyList_Append(list, values[i]) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        Py_XDECREF(values[i]);
    }
    return rc;
}
