/* Native FIX encoders: the hot-path twins of the encoders generated in fixserver/codec.py.
 *
 * Why C: a W snapshot with two levels a side is ~14 values between ~15 constant pieces. The generated
 * Python encoder spends its time in the interpreter (unpacking, one join, a count, an `and` chain, a
 * table lookup, Adler-32, a second join: ~1.2 us a call on the benchmark machine); here the same work is
 * one call that sizes the message, copies each piece once into the result and sums its bytes (~0.35 us).
 *
 * Semantics are the generated encoders', which stay in codec.py as the reference the tests compare with:
 *   - values are bytes-like (buffer protocol, as b"".join takes them); anything else, a value that is
 *     empty or contains SOH, or levels of the wrong shape raise the EncodeError class given at
 *     construction, with the encoder's description in the message;
 *   - the header (already encoded, fields ending in SOH) is copied as it is, never checked;
 *   - BodyLength (9) and CheckSum (10) are computed for any length and any BeginString; a BeginString
 *     that is not bytes-like raises TypeError, as the Python framing does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <string.h>

#define SOH '\x01'
#define LOCAL_SPANS 128 /* values per message kept on the stack; more (a very deep book) use the heap */

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Span;

static const char FIX44[] = "FIX.4.4";

/* ------------------------------------------------------------------------------------------------ */
/* Bytes of an object */

/* Point `out` at the bytes of `obj`. Bytes are read in place; another bytes-like object is copied into a
 * new bytes object appended to *keep (created on first use) so the pointer stays valid. Returns -1 with
 * TypeError set when obj is not bytes-like (the message b"".join gives). */
static int
span_of(PyObject *obj, Span *out, PyObject **keep)
{
    if (PyBytes_Check(obj)) {
        out->ptr = PyBytes_AS_STRING(obj);
        out->len = PyBytes_GET_SIZE(obj);
        return 0;
    }
    Py_buffer view;
    if (!PyObject_CheckBuffer(obj) || PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "expected a bytes-like object, %.80s found", Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *copy = PyBytes_FromStringAndSize(view.buf, view.len);
    PyBuffer_Release(&view);
    if (copy == NULL) {
        return -1;
    }
    if (*keep == NULL && (*keep = PyList_New(0)) == NULL) {
        Py_DECREF(copy);
        return -1;
    }
    int failed = PyList_Append(*keep, copy);
    Py_DECREF(copy);
    if (failed) {
        return -1;
    }
    out->ptr = PyBytes_AS_STRING(copy); /* alive: *keep holds it */
    out->len = PyBytes_GET_SIZE(copy);
    return 0;
}

/* span_of for a framing argument (BeginString, a prepared body's parts): the plain TypeError is the error. */
static int
framing_span(PyObject *obj, Span *out, PyObject **keep, const char *what)
{
    if (span_of(obj, out, keep) == 0) {
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like, not %.80s", what, Py_TYPE(obj)->tp_name);
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------------ */
/* Framing */

static Py_ssize_t
decimal_digits(Py_ssize_t n)
{
    Py_ssize_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static char *
put(char *p, const char *src, Py_ssize_t len)
{
    memcpy(p, src, (size_t)len);
    return p + len;
}

static size_t
bytes_sum(const char *start, const char *end)
{
    const unsigned char *p = (const unsigned char *)start;
    const unsigned char *e = (const unsigned char *)end;
    size_t total = 0;
    while (p < e) {
        total += *p++;
    }
    return total;
}

/* Allocate the whole message for a body of `body_len` bytes and write "8=<begin>SOH9=<len>SOH35=<type>SOH".
 * Returns the bytes object (its last 7 bytes, the trailer, still to write) and sets *cursor after 35=. */
static PyObject *
start_message(const Span *begin, const Span *msg_type, Py_ssize_t body_len, char **cursor)
{
    Py_ssize_t digits = decimal_digits(body_len);
    Py_ssize_t total = 2 + begin->len + 3 + digits + 1 + body_len + 7;
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    *p++ = '8';
    *p++ = '=';
    p = put(p, begin->ptr, begin->len);
    *p++ = SOH;
    *p++ = '9';
    *p++ = '=';
    Py_ssize_t n = body_len;
    for (Py_ssize_t i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + n % 10);
        n /= 10;
    }
    p += digits;
    *p++ = SOH;
    *p++ = '3';
    *p++ = '5';
    *p++ = '=';
    p = put(p, msg_type->ptr, msg_type->len);
    *p++ = SOH;
    *cursor = p;
    return out;
}

/* "10=NNN<SOH>" at p (the last 7 bytes of the message). */
static void
put_checksum(char *p, size_t total)
{
    unsigned int c = (unsigned int)(total & 0xFF);
    p[0] = '1';
    p[1] = '0';
    p[2] = '=';
    p[3] = (char)('0' + c / 100);
    p[4] = (char)('0' + c / 10 % 10);
    p[5] = (char)('0' + c % 10);
    p[6] = SOH;
}

/* ------------------------------------------------------------------------------------------------ */
/* Arguments */

/* Vectorcall arguments into out[0..n_names): positional first, then keywords by name; out[i] stays NULL for
 * an optional argument not given. Errors are the TypeErrors a Python function raises. */
static int
parse_args(PyObject *const *args, size_t nargsf, PyObject *kwnames, const char *const *names, Py_ssize_t n_names,
           Py_ssize_t n_required, PyObject **out, const char *fname)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > n_names) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd positional arguments (%zd given)", fname, n_names,
                     nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n_names; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < n_names && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == n_names) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < n_required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoder: one message shape */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *msg_type; /* bytes */
    PyObject *consts;   /* tuple of n_values + 1 bytes: the text before, between and after the values */
    PyObject *what;     /* str: what this encoder encodes, the start of every EncodeError message */
    PyObject *error;    /* the EncodeError class */
    Span *const_spans;
    Py_ssize_t consts_len; /* total bytes of the constants */
    Py_ssize_t n_values;
    int is_snapshot;
    Py_ssize_t n_bids, n_asks, width;
    int with_req;
} Encoder;

/* Turn a TypeError/ValueError being raised into EncodeError("<what>: <message>"), as the Python encoders'
 * `except (TypeError, ValueError)` does; any other exception passes through. */
static void
reraise_as_encode_error(Encoder *self)
{
    if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError)) {
        return;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value == NULL ? NULL : PyObject_Str(value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (text == NULL) {
        return;
    }
    PyErr_Format(self->error, "%U: %U", self->what, text);
    Py_DECREF(text);
}

static void
refuse(Encoder *self)
{
    PyErr_Format(self->error, "%U: a value is empty or contains SOH", self->what);
}

/* `seq` as a list or tuple of exactly `expected` items (ValueError/TypeError worded like unpacking). */
static PyObject *
unpack(PyObject *seq, Py_ssize_t expected)
{
    PyObject *fast = PySequence_Fast(seq, "");
    if (fast == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.80s object", Py_TYPE(seq)->tp_name);
        }
        return NULL;
    }
    Py_ssize_t got = PySequence_Fast_GET_SIZE(fast);
    if (got != expected) {
        if (got > expected) {
            PyErr_Format(PyExc_ValueError, "too many values to unpack (expected %zd)", expected);
        }
        else {
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected %zd, got %zd)", expected, got);
        }
        Py_DECREF(fast);
        return NULL;
    }
    return fast;
}

/* Encode: header, then consts[0] values[0] consts[1] ... values[n-1] consts[n] after "35=<type><SOH>". */
static PyObject *
encode_values(Encoder *self, PyObject *header, PyObject *const *values, PyObject *begin_string, PyObject **keep)
{
    Py_ssize_t n = self->n_values;
    Span local[LOCAL_SPANS];
    Span *spans = n <= LOCAL_SPANS ? local : PyMem_New(Span, (size_t)n);
    if (spans == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *out = NULL;
    Span head, begin, msg_type;
    if (span_of(header, &head, keep) != 0) {
        reraise_as_encode_error(self);
        goto done;
    }
    Py_ssize_t body_len = 4 + PyBytes_GET_SIZE(self->msg_type) + head.len + self->consts_len;
    int refused = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Span *s = &spans[i];
        if (span_of(values[i], s, keep) != 0) {
            reraise_as_encode_error(self);
            goto done;
        }
        /* an empty value or SOH inside one: no field may be smuggled into the message */
        refused |= s->len == 0 || memchr(s->ptr, SOH, (size_t)s->len) != NULL;
        body_len += s->len;
    }
    if (refused) {
        refuse(self);
        goto done;
    }
    if (begin_string == NULL) {
        begin.ptr = FIX44;
        begin.len = (Py_ssize_t)(sizeof(FIX44) - 1);
    }
    else if (framing_span(begin_string, &begin, keep, "begin_string") != 0) {
        goto done;
    }
    msg_type.ptr = PyBytes_AS_STRING(self->msg_type);
    msg_type.len = PyBytes_GET_SIZE(self->msg_type);
    char *p;
    out = start_message(&begin, &msg_type, body_len, &p);
    if (out == NULL) {
        goto done;
    }
    char *start = PyBytes_AS_STRING(out);
    p = put(p, head.ptr, head.len);
    const Span *c = self->const_spans;
    for (Py_ssize_t i = 0; i < n; i++) {
        p = put(p, c[i].ptr, c[i].len);
        p = put(p, spans[i].ptr, spans[i].len);
    }
    p = put(p, c[n].ptr, c[n].len);
    put_checksum(p, bytes_sum(start, p));
done:
    if (spans != local) {
        PyMem_Free(spans);
    }
    return out;
}

static const char *const TEMPLATE_ARGS[] = {"header", "values", "begin_string"};

static PyObject *
template_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Encoder *self = (Encoder *)op;
    PyObject *a[3];
    if (parse_args(args, nargsf, kwnames, TEMPLATE_ARGS, 3, 2, a, "encode") != 0) {
        return NULL;
    }
    PyObject *values = unpack(a[1], self->n_values);
    if (values == NULL) {
        reraise_as_encode_error(self);
        return NULL;
    }
    PyObject *keep = NULL;
    PyObject *out = encode_values(self, a[0], PySequence_Fast_ITEMS(values), a[2], &keep);
    Py_XDECREF(keep);
    Py_DECREF(values);
    return out;
}

static const char *const SNAPSHOT_ARGS[] = {"header", "symbol", "bids", "asks", "md_req_id", "begin_string"};

static PyObject *
snapshot_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Encoder *self = (Encoder *)op;
    PyObject *a[6];
    if (parse_args(args, nargsf, kwnames, SNAPSHOT_ARGS, 6, 4, a, "encode_w") != 0) {
        return NULL;
    }
    PyObject *local[LOCAL_SPANS];
    PyObject **values = self->n_values <= LOCAL_SPANS ? local : PyMem_New(PyObject *, (size_t)self->n_values);
    if (values == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *keep = NULL; /* lists that hold what `values` borrows when a side or a level is not a list/tuple */
    PyObject *sides[2] = {NULL, NULL};
    PyObject *out = NULL;
    Py_ssize_t k = 0;
    if (self->with_req) {
        values[k++] = a[4] == NULL ? Py_None : a[4]; /* None is refused like any non-bytes value */
    }
    values[k++] = a[1];
    Py_ssize_t counts[2] = {self->n_bids, self->n_asks};
    for (int side = 0; side < 2; side++) {
        if ((sides[side] = unpack(a[2 + side], counts[side])) == NULL) {
            reraise_as_encode_error(self);
            goto done;
        }
        for (Py_ssize_t i = 0; i < counts[side]; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(sides[side], i);
            PyObject *level = unpack(item, self->width);
            if (level == NULL) {
                reraise_as_encode_error(self);
                goto done;
            }
            PyObject **items = PySequence_Fast_ITEMS(level);
            for (Py_ssize_t j = 0; j < self->width; j++) {
                values[k++] = items[j];
            }
            if (level != item) { /* a new list made from an iterator: keep it while its items are used */
                if (keep == NULL && (keep = PyList_New(0)) == NULL) {
                    Py_DECREF(level);
                    goto done;
                }
                int failed = PyList_Append(keep, level);
                Py_DECREF(level);
                if (failed) {
                    goto done;
                }
            }
            else {
                Py_DECREF(level); /* the side still holds it */
            }
        }
    }
    out = encode_values(self, a[0], values, a[5], &keep);
done:
    Py_XDECREF(sides[0]);
    Py_XDECREF(sides[1]);
    Py_XDECREF(keep);
    if (values != local) {
        PyMem_Free(values);
    }
    return out;
}

static PyObject *
Encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msg_type", "consts", "what", "error", "shape", NULL};
    PyObject *msg_type, *consts, *what, *error, *shape = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "SO!UO|O:Encoder", kwlist, &msg_type, &PyTuple_Type, &consts, &what,
                                     &error, &shape)) {
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "error must be an exception class");
        return NULL;
    }
    Py_ssize_t n_consts = PyTuple_GET_SIZE(consts);
    if (n_consts < 1) {
        PyErr_SetString(PyExc_ValueError, "consts must hold at least the text after the last value");
        return NULL;
    }
    Py_ssize_t n_bids = 0, n_asks = 0, width = 0;
    int with_req = 0, is_snapshot = shape != Py_None;
    if (is_snapshot && !PyArg_ParseTuple(shape, "nnnp:shape", &n_bids, &n_asks, &width, &with_req)) {
        return NULL;
    }
    if (is_snapshot && (n_bids < 0 || n_asks < 0 || (width != 2 && width != 3) ||
                        n_consts != 1 + with_req + 1 + (n_bids + n_asks) * width)) {
        PyErr_SetString(PyExc_ValueError, "shape does not match the number of constants");
        return NULL;
    }
    Encoder *self = (Encoder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = is_snapshot ? snapshot_call : template_call;
    self->msg_type = Py_NewRef(msg_type);
    self->consts = Py_NewRef(consts);
    self->what = Py_NewRef(what);
    self->error = Py_NewRef(error);
    self->n_values = n_consts - 1;
    self->is_snapshot = is_snapshot;
    self->n_bids = n_bids;
    self->n_asks = n_asks;
    self->width = width;
    self->with_req = with_req;
    self->const_spans = PyMem_New(Span, (size_t)n_consts);
    if (self->const_spans == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n_consts; i++) {
        PyObject *c = PyTuple_GET_ITEM(consts, i);
        if (!PyBytes_Check(c)) {
            PyErr_SetString(PyExc_TypeError, "consts must be bytes");
            Py_DECREF(self);
            return NULL;
        }
        self->const_spans[i].ptr = PyBytes_AS_STRING(c);
        self->const_spans[i].len = PyBytes_GET_SIZE(c);
        self->consts_len += PyBytes_GET_SIZE(c);
    }
    return (PyObject *)self;
}

static int
Encoder_traverse(Encoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->error);
    return 0;
}

static int
Encoder_clear(Encoder *self)
{
    Py_CLEAR(self->error);
    return 0;
}

static void
Encoder_dealloc(Encoder *self)
{
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    Py_XDECREF(self->msg_type);
    Py_XDECREF(self->consts);
    Py_XDECREF(self->what);
    PyMem_Free(self->const_spans);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Encoder_repr(Encoder *self)
{
    return PyUnicode_FromFormat("<native encoder of %U>", self->what);
}

static PyMemberDef Encoder_members[] = {
    {"msg_type", T_OBJECT, offsetof(Encoder, msg_type), READONLY, "MsgType (35) of the messages encoded"},
    {"what", T_OBJECT, offsetof(Encoder, what), READONLY, "what this encoder encodes (starts its error messages)"},
    {NULL},
};

PyDoc_STRVAR(Encoder_doc,
             "Encoder(msg_type, consts, what, error, shape=None)\n\n"
             "The encoder of one message shape. ``consts`` is the text around the values after the header.\n"
             "Without ``shape`` it is called as ``encode(header, values, begin_string=b'FIX.4.4')`` with one\n"
             "bytes value per gap; with ``shape=(n_bids, n_asks, width, with_req)`` as\n"
             "``encode_w(header, symbol, bids, asks, md_req_id=None, begin_string=b'FIX.4.4')``.");

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "fixserver._wire.Encoder",
    .tp_doc = Encoder_doc,
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = Encoder_new,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_repr = (reprfunc)Encoder_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Encoder, vectorcall),
    .tp_members = Encoder_members,
};

/* ------------------------------------------------------------------------------------------------ */
/* encode_prepared: one session's copy of a shared body */

static const char *const PREPARED_ARGS[] = {"header", "prepared", "begin_string"};

static PyObject *
encode_prepared(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[3];
    if (parse_args(args, (size_t)nargs, kwnames, PREPARED_ARGS, 3, 2, a, "encode_prepared") != 0) {
        return NULL;
    }
    PyObject *prepared = a[1], *parts[3] = {NULL, NULL, NULL}, *keep = NULL, *out = NULL;
    int owned = !(PyTuple_Check(prepared) && !PyTuple_CheckExact(prepared) && PyTuple_GET_SIZE(prepared) == 3);
    if (owned) { /* not a PreparedBody: read its fields by name, as the Python version does */
        static const char *const fields[] = {"msg_type", "body", "body_sum"};
        for (int i = 0; i < 3; i++) {
            if ((parts[i] = PyObject_GetAttrString(prepared, fields[i])) == NULL) {
                goto done;
            }
        }
    }
    else {
        for (int i = 0; i < 3; i++) {
            parts[i] = PyTuple_GET_ITEM(prepared, i);
        }
    }
    Span head, msg_type, body, begin = {FIX44, (Py_ssize_t)(sizeof(FIX44) - 1)};
    if (framing_span(a[0], &head, &keep, "header") != 0 || framing_span(parts[0], &msg_type, &keep, "msg_type") != 0 ||
        framing_span(parts[1], &body, &keep, "body") != 0 ||
        (a[2] != NULL && framing_span(a[2], &begin, &keep, "begin_string") != 0)) {
        goto done;
    }
    if (!PyLong_Check(parts[2])) {
        PyErr_Format(PyExc_TypeError, "body_sum must be an int, not %.80s", Py_TYPE(parts[2])->tp_name);
        goto done;
    }
    /* the low byte is all CheckSum needs; the mask is two's complement, as Python's `& 0xFF` */
    size_t body_sum = (size_t)(PyLong_AsUnsignedLongLongMask(parts[2]) & 0xFF);
    if (PyErr_Occurred()) {
        goto done;
    }
    char *p;
    out = start_message(&begin, &msg_type, 4 + msg_type.len + head.len + body.len, &p);
    if (out == NULL) {
        goto done;
    }
    p = put(p, head.ptr, head.len);
    size_t total = bytes_sum(PyBytes_AS_STRING(out), p) + body_sum; /* the body's sum is given, not taken */
    p = put(p, body.ptr, body.len);
    put_checksum(p, total);
done:
    if (owned) {
        for (int i = 0; i < 3; i++) {
            Py_XDECREF(parts[i]);
        }
    }
    Py_XDECREF(keep);
    return out;
}

PyDoc_STRVAR(encode_prepared_doc,
             "encode_prepared(header, prepared, begin_string=b'FIX.4.4')\n--\n\n"
             "One session's copy of a shared body (a PreparedBody): 8, 9, 35, the encoded header, the body and 10.\n"
             "Only the header is summed here; the body's byte sum is the one it was prepared with.");

static PyMethodDef wire_methods[] = {
    {"encode_prepared", (PyCFunction)(void (*)(void))encode_prepared, METH_FASTCALL | METH_KEYWORDS,
     encode_prepared_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fixserver._wire",
    .m_doc = "Native FIX encoders (the hot-path twins of fixserver.codec's generated encoders).",
    .m_size = -1,
    .m_methods = wire_methods,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    if (PyType_Ready(&EncoderType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&wire_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
