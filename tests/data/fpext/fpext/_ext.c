#include <Python.h>

static PyObject *built_for(PyObject *self, PyObject *args) { return PyUnicode_FromString(BUILT_FOR); }

static PyMethodDef methods[] = {
    {"built_for", built_for, METH_NOARGS, "MPICH_VERSION at build time"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
