/*
 * The spans of an OTLP ExportTraceServiceRequest, encoded from the tuples registry/span_export.py queues.
 *
 * A Python extension module (the rest of registry's C is plain C loaded with ctypes, which could not read
 * the tuples without converting each first): registry/span_export.py's OtlpEncoder calls encode_request once
 * a batch, in the export thread, holding the GIL. It writes the request around the resource and scope fields the
 * encoder made once, and each span's ScopeSpans.spans field (2): the ids, times, trace state and error status of
 * the span, and the block it shares with the spans of its name, kind, remoteness and attributes (name, kind,
 * flags, attributes), which the encoder's Python makes once and keeps (opentelemetry-proto's trace.proto field
 * numbers). Every span is read and checked before anything is written, so the request is counted first and
 * written once into its bytes. In Python the same loop cost 11,000 instructions a span (55,000 a single-row
 * prediction's five), more than all the rest of a traced request's export; here about 2,700 (docs/operations.md,
 * "Traces").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* A span tuple's fields, in registry.span_export.FIELDS' order. */
enum { NAME, TRACE_ID, SPAN_ID, PARENT_ID, REMOTE, KIND, STATE, START, END, NAMES, VALUES, ERROR, FIELD_COUNT };

/* What a span's field holds, read from its tuple before anything is written: the request's size comes first. */
typedef struct {
    uint64_t trace_high, trace_low, span_id, parent_id, start, end;
    PyObject *tuple;  /* a new reference: its strings hold state and message */
    PyObject *block;  /* a new reference: the bytes kept for its name, kind, remoteness and attributes */
    const char *state, *message;  /* UTF-8, owned by the tuple's strings */
    Py_ssize_t state_size, message_size, status_size;  /* status_size: 0 when the span did not fail */
    Py_ssize_t size;  /* the Span message's */
} Span;

static Py_ssize_t varint_size(uint64_t value) {
    Py_ssize_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

/* A length-delimited field's size, its one-byte tag included. */
static Py_ssize_t field_size(Py_ssize_t payload) {
    return 1 + varint_size((uint64_t)payload) + payload;
}

static char *put_varint(char *out, uint64_t value) {
    while (value >= 0x80) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    return out;
}

static char *put_field(char *out, char tag, const char *payload, Py_ssize_t size) {
    *out++ = tag;
    out = put_varint(out, (uint64_t)size);
    memcpy(out, payload, (size_t)size);
    return out + size;
}

static char *put_big_endian(char *out, uint64_t value) {
#if PY_LITTLE_ENDIAN
    value = __builtin_bswap64(value);
#endif
    memcpy(out, &value, 8);
    return out + 8;
}

static char *put_little_endian(char *out, uint64_t value) {
#if !PY_LITTLE_ENDIAN
    value = __builtin_bswap64(value);
#endif
    memcpy(out, &value, 8);
    return out + 8;
}

/* An id or time of at most ``bits`` bits (64 or 128), as its high and low 64 bits; -1 with an exception set when it
   is not a whole number in range. (PyLong_AsUnsignedLongLong converts byte by byte, and raises to say a trace id
   is too large: five times the cost of the whole span.) */
static int unsigned_of(PyObject *value, size_t bits, uint64_t *high, uint64_t *low) {
    static PyObject *sixty_four;
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a span's ids and times must be integers, not %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    size_t found = _PyLong_NumBits(value);
    if (found == (size_t)-1 && PyErr_Occurred())
        return -1;
    if (_PyLong_Sign(value) < 0 || found > bits) {
        PyErr_Format(PyExc_OverflowError, "a span's ids and times are unsigned integers of %zu bits at most", bits);
        return -1;
    }
    *low = PyLong_AsUnsignedLongLongMask(value);
    *high = 0;
    if (found <= 64)
        return 0;
    if (sixty_four == NULL && (sixty_four = PyLong_FromLong(64)) == NULL)
        return -1;
    PyObject *upper = PyNumber_Rshift(value, sixty_four);
    if (upper == NULL)
        return -1;
    *high = PyLong_AsUnsignedLongLongMask(upper);
    Py_DECREF(upper);
    return 0;
}

static int unsigned_64(PyObject *value, uint64_t *found) {
    uint64_t high;
    return unsigned_of(value, 64, &high, found);
}

/* A string field's UTF-8 (NULL with an exception when it is not a string). */
static const char *utf8(PyObject *value, Py_ssize_t *size) {
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a span's trace state and error must be strings (or no error: None)");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(value, size);
}

/* The block kept for the span's key, made by make_block(key, kinds) when there is none or the one kept was made
   for values of other types (1 and True are equal keys, and encoded apart). A new reference to its bytes. */
static PyObject *block_of(PyObject *span, PyObject *blocks, PyObject *make_block) {
    PyObject *values = PyTuple_GET_ITEM(span, VALUES);
    if (!PyTuple_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "a span's attribute values must be a tuple");
        return NULL;
    }
    PyObject *key = PyTuple_Pack(5, PyTuple_GET_ITEM(span, NAME), PyTuple_GET_ITEM(span, KIND),
                                 PyTuple_GET_ITEM(span, REMOTE), PyTuple_GET_ITEM(span, NAMES), values);
    if (key == NULL)
        return NULL;
    PyObject *kept = PyDict_GetItemWithError(blocks, key);  /* borrowed: (kinds, bytes) */
    if (kept == NULL && PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(values);
    if (kept != NULL && PyTuple_Check(kept) && PyTuple_GET_SIZE(kept) == 2 && PyBytes_Check(PyTuple_GET_ITEM(kept, 1))) {
        PyObject *kinds = PyTuple_GET_ITEM(kept, 0);
        int same = PyTuple_Check(kinds) && PyTuple_GET_SIZE(kinds) == count;
        for (Py_ssize_t i = 0; same && i < count; i++)
            same = (PyObject *)Py_TYPE(PyTuple_GET_ITEM(values, i)) == PyTuple_GET_ITEM(kinds, i);
        if (same) {
            Py_DECREF(key);
            PyObject *encoded = PyTuple_GET_ITEM(kept, 1);
            Py_INCREF(encoded);
            return encoded;
        }
    }
    PyObject *kinds = PyTuple_New(count);
    if (kinds == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *kind = (PyObject *)Py_TYPE(PyTuple_GET_ITEM(values, i));
        Py_INCREF(kind);
        PyTuple_SET_ITEM(kinds, i, kind);
    }
    PyObject *made = PyObject_CallFunctionObjArgs(make_block, key, kinds, NULL);
    Py_DECREF(key);
    Py_DECREF(kinds);
    if (made == NULL)
        return NULL;
    if (!PyTuple_Check(made) || PyTuple_GET_SIZE(made) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(made, 1))) {
        Py_DECREF(made);
        PyErr_SetString(PyExc_TypeError, "make_block must answer (kinds, bytes)");
        return NULL;
    }
    PyObject *encoded = PyTuple_GET_ITEM(made, 1);
    Py_INCREF(encoded);
    Py_DECREF(made);
    return encoded;
}

/* Reads the span tuple ``tuple`` into ``span`` (the tuple and its block new references, which the caller lets go
   of whether or not it was read); -1 with an exception set when it is not a span. */
static int read_span(Span *span, PyObject *tuple, PyObject *blocks, PyObject *make_block) {
    span->tuple = span->block = NULL;
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != FIELD_COUNT) {
        PyErr_Format(PyExc_TypeError, "a span must be a tuple of %d fields (registry.span_export.FIELDS)",
                     FIELD_COUNT);
        return -1;
    }
    Py_INCREF(tuple);  /* make_block may drop the caller's */
    span->tuple = tuple;
    PyObject *error = PyTuple_GET_ITEM(tuple, ERROR);
    span->message_size = 0;
    span->message = "";
    if (unsigned_of(PyTuple_GET_ITEM(tuple, TRACE_ID), 128, &span->trace_high, &span->trace_low) < 0
            || unsigned_64(PyTuple_GET_ITEM(tuple, SPAN_ID), &span->span_id) < 0
            || unsigned_64(PyTuple_GET_ITEM(tuple, PARENT_ID), &span->parent_id) < 0
            || unsigned_64(PyTuple_GET_ITEM(tuple, START), &span->start) < 0
            || unsigned_64(PyTuple_GET_ITEM(tuple, END), &span->end) < 0
            || (span->state = utf8(PyTuple_GET_ITEM(tuple, STATE), &span->state_size)) == NULL
            || (error != Py_None && (span->message = utf8(error, &span->message_size)) == NULL))
        return -1;
    /* Status { message (2), code (3) = ERROR } */
    span->status_size = error == Py_None ? 0 : (span->message_size ? field_size(span->message_size) : 0) + 2;
    if ((span->block = block_of(tuple, blocks, make_block)) == NULL)
        return -1;
    span->size = 18 + 10 + (span->parent_id ? 10 : 0) + 18 + PyBytes_GET_SIZE(span->block)
                 + (span->state_size ? field_size(span->state_size) : 0)
                 + (span->status_size ? field_size(span->status_size) : 0);
    return 0;
}

/* The span as ScopeSpans.spans (2): Span { trace_id (1), span_id (2), trace_state (3), parent_span_id (4),
   start (7) and end (8) as fixed64, status (15) } and its block (name, kind, flags, attributes). */
static char *put_span(char *out, const Span *span) {
    *out++ = 0x12;
    out = put_varint(out, (uint64_t)span->size);
    *out++ = 0x0a;
    *out++ = 0x10;
    out = put_big_endian(put_big_endian(out, span->trace_high), span->trace_low);
    *out++ = 0x12;
    *out++ = 0x08;
    out = put_big_endian(out, span->span_id);
    if (span->parent_id) {
        *out++ = 0x22;
        *out++ = 0x08;
        out = put_big_endian(out, span->parent_id);
    }
    *out++ = 0x39;
    out = put_little_endian(out, span->start);
    *out++ = 0x41;
    out = put_little_endian(out, span->end);
    Py_ssize_t block_size = PyBytes_GET_SIZE(span->block);
    memcpy(out, PyBytes_AS_STRING(span->block), (size_t)block_size);
    out += block_size;
    if (span->state_size)
        out = put_field(out, 0x1a, span->state, span->state_size);
    if (span->status_size) {
        *out++ = 0x7a;
        out = put_varint(out, (uint64_t)span->status_size);
        if (span->message_size)
            out = put_field(out, 0x12, span->message, span->message_size);
        *out++ = 0x18;
        *out++ = 0x02;
    }
    return out;
}

PyDoc_STRVAR(encode_request_doc,
"encode_request(resource, scope, spans, blocks, make_block) -> bytes\n\n"
"An ExportTraceServiceRequest of one ResourceSpans: ``resource`` (its encoded resource field), then one\n"
"ScopeSpans of ``scope`` (its encoded scope field) and of each span of ``spans`` (tuples in\n"
"registry.span_export.FIELDS' order). A span's name, kind, flags and attributes are the block ``blocks`` keeps\n"
"for its key (name, kind, remote, names, values) as (the values' types, bytes); ``make_block(key, kinds)`` makes\n"
"and keeps one that is missing or was made for values of other types, and answers it.");

static PyObject *encode_request(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *resource, *scope, *spans, *blocks, *make_block;
    if (!PyArg_ParseTuple(args, "SSO!O!O:encode_request", &resource, &scope, &PyList_Type, &spans, &PyDict_Type,
                          &blocks, &make_block))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(spans), read = 0, spans_size = 0;
    Span *found = PyMem_Malloc(count ? (size_t)count * sizeof(Span) : 1);
    if (found == NULL)
        return PyErr_NoMemory();
    PyObject *request = NULL;
    /* make_block is Python: the list is read again at each span, whatever it did */
    for (; read < count && read < PyList_GET_SIZE(spans); read++) {
        if (read_span(&found[read], PyList_GET_ITEM(spans, read), blocks, make_block) < 0) {
            read++;  /* its references are let go of below */
            goto done;
        }
        spans_size += field_size(found[read].size);
    }
    Py_ssize_t scope_spans = PyBytes_GET_SIZE(scope) + spans_size;  /* ResourceSpans.scope_spans (2) */
    Py_ssize_t resource_spans = PyBytes_GET_SIZE(resource) + field_size(scope_spans);
    request = PyBytes_FromStringAndSize(NULL, field_size(resource_spans));
    if (request == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(request);
    *out++ = 0x0a;  /* ExportTraceServiceRequest.resource_spans (1) */
    out = put_varint(out, (uint64_t)resource_spans);
    memcpy(out, PyBytes_AS_STRING(resource), (size_t)PyBytes_GET_SIZE(resource));
    out += PyBytes_GET_SIZE(resource);
    *out++ = 0x12;  /* ResourceSpans.scope_spans (2): the scope, then the spans */
    out = put_varint(out, (uint64_t)scope_spans);
    memcpy(out, PyBytes_AS_STRING(scope), (size_t)PyBytes_GET_SIZE(scope));
    out += PyBytes_GET_SIZE(scope);
    for (Py_ssize_t i = 0; i < read; i++)
        out = put_span(out, &found[i]);
    if (out != PyBytes_AS_STRING(request) + PyBytes_GET_SIZE(request)) {  /* sized wrong: a bug, never sent */
        Py_CLEAR(request);
        PyErr_SetString(PyExc_SystemError, "registry.span_encoding wrote another size than it counted");
    }
done:
    for (Py_ssize_t i = 0; i < read; i++) {
        Py_XDECREF(found[i].block);
        Py_XDECREF(found[i].tuple);
    }
    PyMem_Free(found);
    return request;
}

static PyMethodDef methods[] = {
    {"encode_request", encode_request, METH_VARARGS, encode_request_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "registry.span_encoding",
    .m_doc = "An OTLP request of spans, encoded from registry.span_export's queued tuples.", .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_span_encoding(void) {
    return PyModule_Create(&module);
}
