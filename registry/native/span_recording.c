/*
 * The spans of a traced request, as registry/tracing.py records them: the request's server span, its steps
 * (parse, resolve, predict, log…) and the spans of work done after it (shadows).
 *
 * A Python extension module, because these are Python objects made and ended in the request's thread: in Python
 * a single-row prediction's five spans cost it about 90,000 instructions (four step objects, each with its
 * function call, __init__, __enter__, attribute calls, __exit__ and tuple), more than any one step of the
 * prediction they describe; here the steps cost a few thousand (docs/operations.md, "Traces").
 *
 * What each does is what registry/tracing.py's docstrings say. The module reads the tracing module's state from
 * its globals, shared once by share(): the recorder (_recorder, None when off), the current span's ContextVar
 * (_current) and the no-op handed back when nothing is traced (_OFF); so there is one of each, and a test that
 * replaces the recorder replaces it here too. Ids come from random.getrandbits (reseeded in a forked child by the
 * random module itself), times from the clock time.time_ns reads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <time.h>

enum { INTERNAL = 1 };  /* OTLP's SpanKind of a step */

typedef struct Span {
    PyObject_HEAD
    PyObject *name, *trace_id, *span_id, *parent_id, *state, *attributes, *error;
    PyObject *steps;  /* a span's steps ended so far (a list, NULL until the first) */
    struct Span *parent;  /* a step's span, until the step ends (so that a request frees without a cycle) */
    long long start, end;  /* ns; end 0 until the span ends */
    int kind, flags;
    char sampled, remote, step;
} Span;

static PyTypeObject SpanType;
static PyObject *shared;  /* registry.tracing's globals */
static PyObject *getrandbits, *sixty_four, *empty;
static PyObject *recorder_key, *current_key, *off_key, *add_name, *name_attribute;

static long long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* A new span id: 64 random bits, never 0. */
static PyObject *new_span_id(void) {
    PyObject *found = PyObject_CallOneArg(getrandbits, sixty_four);
    if (found == NULL)
        return NULL;
    int zero = PyObject_Not(found);
    if (zero) {
        Py_DECREF(found);
        return zero < 0 ? NULL : PyLong_FromLong(1);
    }
    return found;
}

/* A borrowed reference to one of registry.tracing's globals; NULL (with an exception) when not shared or absent. */
static PyObject *tracing_global(PyObject *key) {
    if (shared == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "registry.span_recording: share() was not called");
        return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(shared, key);
    if (found == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_RuntimeError, "registry.tracing has no %S", key);
    return found;
}

static Span *span_alloc(void) {
    Span *self = PyObject_GC_New(Span, &SpanType);
    if (self == NULL)
        return NULL;
    self->name = self->trace_id = self->span_id = self->parent_id = self->state = self->attributes = NULL;
    self->steps = NULL;
    self->parent = NULL;
    Py_INCREF(Py_None);
    self->error = Py_None;
    self->start = self->end = 0;
    self->kind = INTERNAL;
    self->flags = 1;
    self->sampled = 1;
    self->remote = self->step = 0;
    return self;
}

PyDoc_STRVAR(span_doc,
"Span(name, trace_id, parent_id, sampled, kind, start, attributes, remote=False, flags=1, state='')\n--\n\n"
"One span: ids, times, attributes; queued with its steps when it ends, if sampled. Its own ``with`` block ends\n"
"it, marked an error by an exception that leaves it (by the exception's class name only: its message may\n"
"quote the inputs). Positional arguments only; ``attributes`` is kept, not copied.");

static PyObject *span_new(PyTypeObject *Py_UNUSED(type), PyObject *args, PyObject *kwargs) {
    PyObject *name, *trace_id, *parent_id, *attributes, *state = empty;
    int sampled, kind, remote = 0, flags = 1;
    long long start;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Span() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOpiLO!|piU:Span", &name, &trace_id, &parent_id, &sampled, &kind, &start,
                          &PyDict_Type, &attributes, &remote, &flags, &state))
        return NULL;
    PyObject *span_id = new_span_id();
    if (span_id == NULL)
        return NULL;
    Span *self = span_alloc();
    if (self == NULL) {
        Py_DECREF(span_id);
        return NULL;
    }
    Py_INCREF(name);
    Py_INCREF(trace_id);
    Py_INCREF(parent_id);
    Py_INCREF(attributes);
    Py_INCREF(state);
    self->name = name;
    self->trace_id = trace_id;
    self->span_id = span_id;
    self->parent_id = parent_id;
    self->attributes = attributes;
    self->state = state;
    self->sampled = (char)sampled;
    self->kind = kind;
    self->start = start;
    self->remote = (char)remote;
    self->flags = flags;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* The span as the recorder queues it (registry.span_export.FIELDS). */
static PyObject *ended_tuple(Span *self) {
    Py_ssize_t count = PyDict_GET_SIZE(self->attributes), i = 0, position = 0;
    PyObject *key, *value;
    PyObject *names = PyTuple_New(count), *values = PyTuple_New(count);
    PyObject *start = PyLong_FromLongLong(self->start), *end = PyLong_FromLongLong(self->end);
    PyObject *kind = PyLong_FromLong(self->kind);
    PyObject *found = PyTuple_New(12);
    if (names == NULL || values == NULL || start == NULL || end == NULL || kind == NULL || found == NULL) {
        Py_XDECREF(names);
        Py_XDECREF(values);
        Py_XDECREF(start);
        Py_XDECREF(end);
        Py_XDECREF(kind);
        Py_XDECREF(found);
        return NULL;
    }
    while (PyDict_Next(self->attributes, &position, &key, &value) && i < count) {
        Py_INCREF(key);
        Py_INCREF(value);
        PyTuple_SET_ITEM(names, i, key);
        PyTuple_SET_ITEM(values, i, value);
        i++;
    }
    PyObject *remote = self->remote ? Py_True : Py_False;
    PyObject *fields[] = {self->name, self->trace_id, self->span_id, self->parent_id, remote, NULL, self->state};
    for (Py_ssize_t field = 0; field < 7; field++) {
        if (fields[field] != NULL) {
            Py_INCREF(fields[field]);
            PyTuple_SET_ITEM(found, field, fields[field]);
        }
    }
    PyTuple_SET_ITEM(found, 5, kind);
    PyTuple_SET_ITEM(found, 7, start);
    PyTuple_SET_ITEM(found, 8, end);
    PyTuple_SET_ITEM(found, 9, names);
    PyTuple_SET_ITEM(found, 10, values);
    Py_INCREF(self->error);
    PyTuple_SET_ITEM(found, 11, self->error);
    return found;
}

/* Hand ``args`` to the recorder's add, when tracing is on; a new reference to None, or NULL. */
static PyObject *queue(PyObject *const *args, size_t count) {
    PyObject *recorder = tracing_global(recorder_key);
    if (recorder == NULL)
        return NULL;
    if (recorder == Py_None)
        Py_RETURN_NONE;
    PyObject *call[3] = {recorder, args[0], count > 1 ? args[1] : NULL};
    return PyObject_VectorcallMethod(add_name, call, 1 + count, NULL);
}

/* End a span that is not a step at ``end`` and queue it, with its steps ended so far, when sampled. Its steps
   are let go, as each step let go of it when it ended: reference counts free them all with the request. */
static PyObject *end_span(Span *self, long long end) {
    self->end = end;
    PyObject *steps = self->steps;
    self->steps = NULL;
    if (!self->sampled) {
        Py_XDECREF(steps);
        Py_RETURN_NONE;
    }
    PyObject *mine = ended_tuple(self);
    Py_ssize_t count = steps == NULL ? 0 : PyList_GET_SIZE(steps);
    PyObject *children = PyList_New(count);
    PyObject *done = NULL;
    if (mine != NULL && children != NULL) {
        Py_ssize_t i = 0;
        for (; i < count; i++) {
            PyObject *child = ended_tuple((Span *)PyList_GET_ITEM(steps, i));
            if (child == NULL)
                break;
            PyList_SET_ITEM(children, i, child);
        }
        if (i == count) {
            PyObject *args[2] = {mine, children};
            done = queue(args, 2);
        }
    }
    Py_XDECREF(mine);
    Py_XDECREF(children);
    Py_XDECREF(steps);
    return done;
}

PyDoc_STRVAR(end_at_doc,
"end_at(end_ns=None)\n--\n\n"
"End the span (now, or at ``end_ns``) and queue it, with its steps ended so far, to be sent when sampled.");

static PyObject *span_end_at(Span *self, PyObject *const *args, Py_ssize_t count) {
    if (count > 1) {
        PyErr_SetString(PyExc_TypeError, "end_at() takes at most one argument");
        return NULL;
    }
    long long end = now_ns();
    if (count == 1 && args[0] != Py_None) {
        end = PyLong_AsLongLong(args[0]);
        if (end == -1 && PyErr_Occurred())
            return NULL;
    }
    if (self->step) {
        PyErr_SetString(PyExc_TypeError, "a step ends with its with block, not end_at()");
        return NULL;
    }
    return end_span(self, end);
}

PyDoc_STRVAR(ended_doc, "ended()\n--\n\nThe span as the recorder queues it (registry.span_export.FIELDS).");

static PyObject *span_ended(Span *self, PyObject *Py_UNUSED(ignored)) {
    return ended_tuple(self);
}

PyDoc_STRVAR(is_recording_doc, "is_recording()\n--\n\nWhether the span is sampled (its attributes are sent).");

static PyObject *span_is_recording(Span *self, PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(self->sampled);
}

PyDoc_STRVAR(set_attribute_doc,
"set_attribute(key, value)\n--\n\nSet one attribute (a string, boolean, integer or float).");

static PyObject *span_set_attribute(Span *self, PyObject *const *args, Py_ssize_t count) {
    if (count != 2) {
        PyErr_SetString(PyExc_TypeError, "set_attribute() takes a key and a value");
        return NULL;
    }
    if (PyDict_SetItem(self->attributes, args[0], args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(set_attributes_doc, "set_attributes(attributes)\n--\n\nSet several attributes (a mapping).");

static PyObject *span_set_attributes(Span *self, PyObject *attributes) {
    if (PyDict_Update(self->attributes, attributes) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *span_enter(Span *self, PyObject *Py_UNUSED(ignored)) {
    Py_INCREF(self);
    return (PyObject *)self;
}

/* A step that ends is kept by its span, to be queued with it; one that ends after its span (none of the data
   plane's do) is queued alone. Either way it lets go of its span. */
static PyObject *step_ended(Span *self) {
    self->end = now_ns();
    Span *parent = self->parent;
    self->parent = NULL;
    if (parent == NULL)  /* its block left twice: it was kept or queued the first time */
        Py_RETURN_NONE;
    PyObject *done = NULL;
    if (!parent->end) {
        if (parent->steps == NULL)
            parent->steps = PyList_New(0);
        if (parent->steps != NULL && PyList_Append(parent->steps, (PyObject *)self) == 0) {
            Py_INCREF(Py_None);
            done = Py_None;
        }
    } else {
        PyObject *mine = ended_tuple(self);
        if (mine != NULL) {
            done = queue(&mine, 1);
            Py_DECREF(mine);
        }
    }
    Py_DECREF(parent);
    return done;
}

static PyObject *span_exit(Span *self, PyObject *const *args, Py_ssize_t count) {
    if (count != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__() takes an exception's type, value and traceback");
        return NULL;
    }
    if (args[1] != Py_None) {
        PyObject *name = PyObject_GetAttr(args[0], name_attribute);
        if (name == NULL)
            return NULL;
        Py_SETREF(self->error, name);
    }
    PyObject *done = self->step ? step_ended(self) : end_span(self, now_ns());
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    Py_RETURN_FALSE;  /* the exception, if any, goes on */
}

static int span_traverse(Span *self, visitproc visit, void *arg) {
    Py_VISIT(self->name);
    Py_VISIT(self->trace_id);
    Py_VISIT(self->span_id);
    Py_VISIT(self->parent_id);
    Py_VISIT(self->state);
    Py_VISIT(self->attributes);
    Py_VISIT(self->error);
    Py_VISIT(self->steps);
    Py_VISIT(self->parent);
    return 0;
}

static int span_clear(Span *self) {
    Py_CLEAR(self->name);
    Py_CLEAR(self->trace_id);
    Py_CLEAR(self->span_id);
    Py_CLEAR(self->parent_id);
    Py_CLEAR(self->state);
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->error);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->parent);
    return 0;
}

static void span_dealloc(Span *self) {
    PyObject_GC_UnTrack(self);
    span_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef span_methods[] = {
    {"end_at", (PyCFunction)(void (*)(void))span_end_at, METH_FASTCALL, end_at_doc},
    {"ended", (PyCFunction)span_ended, METH_NOARGS, ended_doc},
    {"is_recording", (PyCFunction)span_is_recording, METH_NOARGS, is_recording_doc},
    {"set_attribute", (PyCFunction)(void (*)(void))span_set_attribute, METH_FASTCALL, set_attribute_doc},
    {"set_attributes", (PyCFunction)span_set_attributes, METH_O, set_attributes_doc},
    {"__enter__", (PyCFunction)span_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))span_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef span_members[] = {
    {"name", T_OBJECT_EX, offsetof(Span, name), READONLY, NULL},
    {"trace_id", T_OBJECT_EX, offsetof(Span, trace_id), READONLY, NULL},
    {"span_id", T_OBJECT_EX, offsetof(Span, span_id), READONLY, NULL},
    {"parent_id", T_OBJECT_EX, offsetof(Span, parent_id), READONLY, NULL},
    {"state", T_OBJECT_EX, offsetof(Span, state), READONLY, "the W3C tracestate it propagates"},
    {"attributes", T_OBJECT_EX, offsetof(Span, attributes), READONLY, NULL},
    {"start", T_LONGLONG, offsetof(Span, start), READONLY, "ns since the epoch"},
    {"end", T_LONGLONG, offsetof(Span, end), READONLY, "ns since the epoch; 0 until it ends"},
    {"kind", T_INT, offsetof(Span, kind), READONLY, "OTLP's SpanKind"},
    {"flags", T_INT, offsetof(Span, flags), READONLY, "the W3C trace flags it propagates"},
    {"sampled", T_BOOL, offsetof(Span, sampled), READONLY, NULL},
    {"remote", T_BOOL, offsetof(Span, remote), READONLY, "whether its parent is the caller's"},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *span_get_error(Span *self, void *Py_UNUSED(closure)) {
    Py_INCREF(self->error);
    return self->error;
}

static int span_set_error(Span *self, PyObject *error, void *Py_UNUSED(closure)) {
    if (error == NULL || (error != Py_None && !PyUnicode_Check(error))) {
        PyErr_SetString(PyExc_TypeError, "a span's error is None or a string");
        return -1;
    }
    Py_INCREF(error);
    Py_SETREF(self->error, error);
    return 0;
}

static PyGetSetDef span_getset[] = {
    {"error", (getter)span_get_error, (setter)span_set_error,
     "None, or what failed it: an exception's class name ('' for an error status alone)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "registry.span_recording.Span",
    .tp_basicsize = sizeof(Span),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = span_doc,
    .tp_new = span_new,
    .tp_dealloc = (destructor)span_dealloc,
    .tp_traverse = (traverseproc)span_traverse,
    .tp_clear = (inquiry)span_clear,
    .tp_methods = span_methods,
    .tp_members = span_members,
    .tp_getset = span_getset,
};

PyDoc_STRVAR(child_doc,
"child(name)\n--\n\n"
"A step of the current span for the block (``parse``, ``resolve``, ``predict``…): a child span, kept by its\n"
"span when it ends and queued with it, marked an error by an exception that leaves the block; the shared\n"
"no-op when tracing is off or nothing is traced. Not made current: the steps of a request have no children.");

static PyObject *child(PyObject *Py_UNUSED(module), PyObject *name) {
    PyObject *current = tracing_global(current_key), *parent = NULL;
    if (current == NULL || PyContextVar_Get(current, NULL, &parent) < 0)
        return NULL;
    if (parent == NULL || Py_TYPE(parent) != &SpanType || !((Span *)parent)->sampled) {
        Py_XDECREF(parent);
        PyObject *off = tracing_global(off_key);
        Py_XINCREF(off);
        return off;
    }
    PyObject *span_id = new_span_id();
    Span *self = span_id == NULL ? NULL : span_alloc();
    PyObject *attributes = self == NULL ? NULL : PyDict_New();
    if (attributes == NULL) {
        Py_XDECREF(span_id);
        Py_XDECREF(self);
        Py_DECREF(parent);
        return NULL;
    }
    Span *span = (Span *)parent;  /* the reference ContextVar.get gave, kept until the step ends */
    Py_INCREF(name);
    Py_INCREF(span->trace_id);
    Py_INCREF(span->span_id);
    Py_INCREF(empty);
    self->name = name;
    self->trace_id = span->trace_id;
    self->span_id = span_id;
    self->parent_id = span->span_id;
    self->state = empty;
    self->attributes = attributes;
    self->parent = span;
    self->step = 1;
    self->start = now_ns();
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

PyDoc_STRVAR(share_doc,
"share(namespace)\n--\n\n"
"Read registry.tracing's state from ``namespace``, its globals: ``_recorder``, ``_current`` and ``_OFF``.");

static PyObject *share(PyObject *Py_UNUSED(module), PyObject *namespace) {
    if (!PyDict_Check(namespace)) {
        PyErr_SetString(PyExc_TypeError, "share() takes a module's globals (a dict)");
        return NULL;
    }
    Py_INCREF(namespace);
    Py_XSETREF(shared, namespace);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"child", child, METH_O, child_doc},
    {"share", share, METH_O, share_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "registry.span_recording",
    .m_doc = "The spans of a traced request, as registry.tracing records them.", .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_span_recording(void) {
    PyObject *random = PyImport_ImportModule("random");
    if (random == NULL)
        return NULL;
    getrandbits = PyObject_GetAttrString(random, "getrandbits");
    Py_DECREF(random);
    sixty_four = PyLong_FromLong(64);
    empty = PyUnicode_InternFromString("");
    recorder_key = PyUnicode_InternFromString("_recorder");
    current_key = PyUnicode_InternFromString("_current");
    off_key = PyUnicode_InternFromString("_OFF");
    add_name = PyUnicode_InternFromString("add");
    name_attribute = PyUnicode_InternFromString("__name__");
    if (getrandbits == NULL || sixty_four == NULL || empty == NULL || recorder_key == NULL || current_key == NULL ||
        off_key == NULL || add_name == NULL || name_attribute == NULL || PyType_Ready(&SpanType) < 0)
        return NULL;
    PyObject *found = PyModule_Create(&module);
    if (found == NULL)
        return NULL;
    Py_INCREF(&SpanType);
    if (PyModule_AddObject(found, "Span", (PyObject *)&SpanType) < 0) {
        Py_DECREF(&SpanType);
        Py_DECREF(found);
        return NULL;
    }
    return found;
}
