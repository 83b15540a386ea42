/*
 * objstate.c -- an instance's attributes without materialising its __dict__.
 *
 * 3.11 and 3.12 keep a plain instance's attributes inline ("values") until
 * something asks for its __dict__; from then on the object has a real dict
 * and the interpreter's specialised attribute access no longer applies to it.
 * Pickling an argument asks for its __dict__, so capture would leave every
 * captured object slower for the rest of the run. instance_state() reads the
 * inline values instead (capture.py pickles the same reduction with them).
 * Elsewhere both functions say "not applicable".
 */
#define RT_PY_DICT_INTERNALS 1
#include "binding.h"

/* instance_state(obj) -> a new dict of obj's instance attributes, read
 * without materialising its __dict__ (3.11/3.12), or None when obj has no
 * managed dict (then use the usual __dict__/__getstate__ path). */
PyObject *rt_py_instance_state(PyObject *m, PyObject *obj)
{
#ifdef RT_INLINE_VALUES
    PyObject *d = NULL; /* Owned */
    PyTypeObject *tp = Py_TYPE(obj);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        Py_RETURN_NONE;
    PyDictValues *values;
    PyObject *dict; /* Borrowed */
    rt_py_managed_dict(obj, &values, &dict);
    if (!values)
        return dict ? PyDict_Copy(dict) : PyDict_New();
    PyDictKeysObject *keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!keys || !DK_IS_UNICODE(keys))
        Py_RETURN_NONE;
    if (!(d = PyDict_New()))
        goto error;
    PyDictUnicodeEntry *ents = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        PyObject *v = values->values[i]; /* Borrowed */
        if (!v || !ents[i].me_key)
            continue;
        if (PyDict_SetItem(d, ents[i].me_key, v) < 0)
            goto error;
    }
    return d;
error:
    Py_XDECREF(d);
    return NULL;
#else
    Py_RETURN_NONE;
#endif
}

/* has_inline_values(obj) -> True when obj's attributes are still stored
 * inline (3.11/3.12: its __dict__ was never materialised); for tests. */
PyObject *rt_py_has_inline_values(PyObject *m, PyObject *obj)
{
#ifdef RT_INLINE_VALUES
    if (Py_TYPE(obj)->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        PyDictValues *values;
        PyObject *dict;
        rt_py_managed_dict(obj, &values, &dict);
        if (values)
            Py_RETURN_TRUE;
    }
#endif
    Py_RETURN_FALSE;
}
