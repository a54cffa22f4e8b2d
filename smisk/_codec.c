/* smisk._codec: the C twin of smisk/_codec_py.py (the reference).
 *
 * Rules: every function returns what its Python twin returns and raises the same exception types
 * with the same messages; input that needs no change is returned as the very same object. No
 * mutable global state: the module state is empty and all tables are const. Every read is checked
 * against the length of its buffer before it happens. Text (str) input is processed as UTF-8.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define SMISK_HAVE_SYS_RANDOM 1
#endif
#endif

#if defined(__GNUC__)
#define MAYBE_UNUSED __attribute__((unused))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MAYBE_UNUSED
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

/* Inputs up to this size are decoded through a stack buffer instead of the heap. */
#define STACK_BUFFER_SIZE 512

/* ------------------------------------------------------------------------------------------ */
/* Argument binding for METH_FASTCALL | METH_KEYWORDS, with the interpreter's own messages.   */

typedef struct {
    const char *name;          /* function name, for messages */
    const char *const *params; /* parameter names, in order */
    int nparams;
    int nrequired; /* the first nrequired parameters have no default */
} signature;

static int
param_index(const signature *sig, PyObject *key)
{
    for (int i = 0; i < sig->nparams; i++) {
        if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, sig->params[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int
too_many_positional(const signature *sig, Py_ssize_t given)
{
    if (sig->nrequired == sig->nparams) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d positional argument%s but %zd were given",
                     sig->name, sig->nparams, sig->nparams == 1 ? "" : "s", given);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from %d to %d positional arguments but %zd were given", sig->name,
                     sig->nrequired, sig->nparams, given);
    }
    return -1;
}

/* Fill out[0..nparams) with the arguments; unset parameters stay NULL (the caller's default). */
static int
bind_args(const signature *sig, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
          PyObject **out)
{
    Py_ssize_t npos = nargs < sig->nparams ? nargs : sig->nparams;
    for (int i = 0; i < sig->nparams; i++) {
        out[i] = i < npos ? args[i] : NULL;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = param_index(sig, key);
        if (i < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                         sig->name, key);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", sig->name,
                         sig->params[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    if (nargs > sig->nparams) {
        return too_many_positional(sig, nargs);
    }
    for (int i = 0; i < sig->nrequired; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'",
                         sig->name, sig->params[i]);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Byte views of str and bytes arguments.                                                      */

typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
    PyObject *owner; /* a UTF-8 bytes object we created, or NULL */
} view;

static void
view_release(view *v)
{
    Py_CLEAR(v->owner);
}

/* Return 1 if the str is ASCII, so that its characters are its UTF-8 bytes. */
static int
str_is_ascii(PyObject *s)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) {
        return -1;
    }
#endif
    return PyUnicode_IS_ASCII(s) ? 1 : 0;
}

/* A view of the UTF-8 bytes of a str or bytes object; TypeError (message) for anything else. */
static int
view_utf8(PyObject *s, view *v, const char *message)
{
    v->owner = NULL;
    if (PyBytes_Check(s)) {
        v->data = (const unsigned char *)PyBytes_AS_STRING(s);
        v->size = PyBytes_GET_SIZE(s);
        return 0;
    }
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, message);
        return -1;
    }
    int ascii = str_is_ascii(s);
    if (ascii < 0) {
        return -1;
    }
    if (ascii) {
        v->data = PyUnicode_1BYTE_DATA(s);
        v->size = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    v->owner = PyUnicode_AsUTF8String(s);
    if (v->owner == NULL) {
        return -1;
    }
    v->data = (const unsigned char *)PyBytes_AS_STRING(v->owner);
    v->size = PyBytes_GET_SIZE(v->owner);
    return 0;
}

/* A new ASCII str of the given length; *data receives its writable characters. */
static PyObject *
new_ascii(Py_ssize_t size, unsigned char **data)
{
    PyObject *out = PyUnicode_New(size, 127);
    if (out != NULL) {
        *data = PyUnicode_1BYTE_DATA(out);
    }
    return out;
}

/* A new bytes object of the given length; *data receives its writable bytes. */
static PyObject *
new_bytes(Py_ssize_t size, unsigned char **data)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL) {
        *data = (unsigned char *)PyBytes_AS_STRING(out);
    }
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* FastCGI name-value pairs and record headers.                                                */

#define SHORT_LENGTH_MAX 127         /* FastCGI: lengths up to 127 take one byte, else four */
#define LONG_LENGTH_MASK 0x7FFFFFFFu /* the top bit of a 4-byte length only flags the form */
#define RECORD_HEADER_SIZE 8         /* version, type, id (2), length (2), padding, reserved */

static int
is_byte_buffer(PyObject *o)
{
    return PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o);
}

static int
get_byte_buffer(PyObject *o, Py_buffer *buffer)
{
    if (!is_byte_buffer(o)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes, bytearray or memoryview");
        return -1;
    }
    return PyObject_GetBuffer(o, buffer, PyBUF_SIMPLE);
}

/* Read one length at *pos; -1 with ValueError if it runs past the end. */
static int
read_length(const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos, Py_ssize_t *length)
{
    Py_ssize_t p = *pos;
    if (p >= end) {
        goto truncated;
    }
    if (data[p] < 0x80) {
        *length = data[p];
        *pos = p + 1;
        return 0;
    }
    if (end - p < 4) {
        goto truncated;
    }
    uint32_t value = ((uint32_t)data[p] << 24) | ((uint32_t)data[p + 1] << 16) |
                     ((uint32_t)data[p + 2] << 8) | (uint32_t)data[p + 3];
    *length = (Py_ssize_t)(value & LONG_LENGTH_MASK);
    *pos = p + 4;
    return 0;
truncated:
    PyErr_SetString(PyExc_ValueError, "truncated name-value pair length");
    return -1;
}

static PyObject *
pair_tuple(const unsigned char *name, Py_ssize_t name_length, Py_ssize_t value_length)
{
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        return NULL;
    }
    PyObject *n = PyBytes_FromStringAndSize((const char *)name, name_length);
    if (n == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, n);
    PyObject *v = PyBytes_FromStringAndSize((const char *)name + name_length, value_length);
    if (v == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 1, v);
    return pair;
}

static PyObject *
decode_pairs(const unsigned char *data, Py_ssize_t end)
{
    PyObject *pairs = PyList_New(0);
    Py_ssize_t pos = 0, name_length, value_length;
    while (pairs != NULL && pos < end) {
        if (read_length(data, end, &pos, &name_length) < 0 ||
            read_length(data, end, &pos, &value_length) < 0) {
            Py_CLEAR(pairs);
            break;
        }
        /* Compared one at a time so that no sum can overflow. */
        if (name_length > end - pos || value_length > end - pos - name_length) {
            PyErr_SetString(PyExc_ValueError, "name-value pair longer than its stream");
            Py_CLEAR(pairs);
            break;
        }
        PyObject *pair = pair_tuple(data + pos, name_length, value_length);
        if (pair == NULL || PyList_Append(pairs, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(pairs);
            break;
        }
        Py_DECREF(pair);
        pos += name_length + value_length;
    }
    return pairs;
}

static const char *const decode_params_params[] = {"data"};
static const signature decode_params_sig = {"decode_params", decode_params_params, 1, 1};

static PyObject *
codec_decode_params(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[1];
    Py_buffer buffer;
    if (bind_args(&decode_params_sig, args, nargs, kwnames, argv) < 0 ||
        get_byte_buffer(argv[0], &buffer) < 0) {
        return NULL;
    }
    PyObject *pairs = decode_pairs(buffer.buf, buffer.len);
    PyBuffer_Release(&buffer);
    return pairs;
}

/* The bytes of a name or value: bytes or bytearray. */
static int
pair_part(PyObject *o, const char **data, Py_ssize_t *size)
{
    if (PyBytes_Check(o)) {
        *data = PyBytes_AS_STRING(o);
        *size = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (PyByteArray_Check(o)) {
        *data = PyByteArray_AS_STRING(o);
        *size = PyByteArray_GET_SIZE(o);
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "names and values must be bytes");
    return -1;
}

/* The name and value of one pair, after the checks of the Python twin's _check_pair. */
static int
pair_parts(PyObject *pair, PyObject **name, PyObject **value)
{
    if (!(PyTuple_Check(pair) || PyList_Check(pair)) || Py_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "name-value pairs must be (name, value) tuples");
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(pair);
    *name = items[0];
    *value = items[1];
    const char *data;
    Py_ssize_t size;
    if (pair_part(*name, &data, &size) < 0 || pair_part(*value, &data, &size) < 0) {
        return -1;
    }
    return 0;
}

/* The bytes of a name or value already checked by pair_parts. */
static const char *
part_data(PyObject *o)
{
    return PyBytes_Check(o) ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o);
}

static Py_ssize_t
length_size(Py_ssize_t length)
{
    if (length <= SHORT_LENGTH_MAX) {
        return 1;
    }
    if ((size_t)length > LONG_LENGTH_MASK) {
        PyErr_SetString(PyExc_ValueError, "name-value pair too long");
        return -1;
    }
    return 4;
}

static unsigned char *
write_length(unsigned char *out, Py_ssize_t length)
{
    if (length <= SHORT_LENGTH_MAX) {
        *out++ = (unsigned char)length;
        return out;
    }
    uint32_t value = (uint32_t)length | 0x80000000u;
    out[0] = (unsigned char)(value >> 24);
    out[1] = (unsigned char)(value >> 16);
    out[2] = (unsigned char)(value >> 8);
    out[3] = (unsigned char)value;
    return out + 4;
}

/* Size of the encoded stream, checking every pair in order; -1 on error. */
static Py_ssize_t
encoded_params_size(PyObject *list)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *name, *value;
        if (pair_parts(PyList_GET_ITEM(list, i), &name, &value) < 0) {
            return -1;
        }
        Py_ssize_t n = Py_SIZE(name), v = Py_SIZE(value);
        Py_ssize_t nsize = length_size(n), vsize;
        if (nsize < 0 || (vsize = length_size(v)) < 0) {
            return -1;
        }
        if (total > PY_SSIZE_T_MAX - 8 - n - v) {
            PyErr_NoMemory();
            return -1;
        }
        total += nsize + vsize + n + v;
    }
    return total;
}

static void
write_params(PyObject *list, unsigned char *out)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject **items = PySequence_Fast_ITEMS(PyList_GET_ITEM(list, i));
        Py_ssize_t n = Py_SIZE(items[0]), v = Py_SIZE(items[1]);
        const char *name = part_data(items[0]), *value = part_data(items[1]);
        out = write_length(out, n);
        out = write_length(out, v);
        memcpy(out, name, (size_t)n);
        memcpy(out + n, value, (size_t)v);
        out += n + v;
    }
}

static const char *const encode_params_params[] = {"pairs"};
static const signature encode_params_sig = {"encode_params", encode_params_params, 1, 1};

static PyObject *
codec_encode_params(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[1];
    if (bind_args(&encode_params_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    /* A private list: no Python code runs between sizing and writing, so neither changes. */
    PyObject *list = PySequence_List(argv[0]);
    if (list == NULL) {
        return NULL;
    }
    PyObject *out = NULL;
    unsigned char *data;
    Py_ssize_t size = encoded_params_size(list);
    if (size >= 0 && (out = new_bytes(size, &data)) != NULL) {
        write_params(list, data);
    }
    Py_DECREF(list);
    return out;
}

/* A name or value (checked by pair_parts) as text: UTF-8, undecodable bytes as surrogates. */
static PyObject *
pair_text(PyObject *part)
{
    return PyUnicode_DecodeUTF8(part_data(part), Py_SIZE(part), "surrogateescape");
}

/* A name or value as latin-1 text: one character per byte (PEP 3333's "bytes as str"). */
static PyObject *
pair_latin1(PyObject *part)
{
    return PyUnicode_DecodeLatin1(part_data(part), Py_SIZE(part), NULL);
}

/* Decode every pair into out with pair_text or pair_latin1; later duplicates replace earlier
 * ones. No Python code runs in here (the decoders and str hashing are C), so the sequence
 * cannot change. */
static int
fill_params_text(PyObject *out, PyObject *seq, PyObject *(*decode)(PyObject *))
{
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *name, *value;
        if (pair_parts(PySequence_Fast_GET_ITEM(seq, i), &name, &value) < 0) {
            return -1;
        }
        PyObject *key = decode(name), *text = key == NULL ? NULL : decode(value);
        int stored = text == NULL ? -1 : PyDict_SetItem(out, key, text);
        Py_XDECREF(key);
        Py_XDECREF(text);
        if (stored < 0) {
            return -1;
        }
    }
    return 0;
}

/* The dict of params_text or params_latin1: the pairs (any iterable) decoded by decode. */
static PyObject *
decoded_params(PyObject *pairs, PyObject *(*decode)(PyObject *))
{
    PyObject *seq = PyList_Check(pairs) || PyTuple_Check(pairs) ? Py_NewRef(pairs)
                                                                : PySequence_List(pairs);
    if (seq == NULL) {
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out != NULL && fill_params_text(out, seq, decode) < 0) {
        Py_CLEAR(out);
    }
    Py_DECREF(seq);
    return out;
}

static const char *const params_text_params[] = {"pairs"};
static const signature params_text_sig = {"params_text", params_text_params, 1, 1};

static PyObject *
codec_params_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[1];
    if (bind_args(&params_text_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    return decoded_params(argv[0], pair_text);
}

static const signature params_latin1_sig = {"params_latin1", params_text_params, 1, 1};

static PyObject *
codec_params_latin1(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[1];
    if (bind_args(&params_latin1_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    return decoded_params(argv[0], pair_latin1);
}

static const char *const header_params[] = {"data", "offset"};
static const signature header_sig = {"parse_record_header", header_params, 2, 1};

/* The offset argument: ValueError when no header fits after it, as in the Python twin. */
static int
header_offset(PyObject *o, Py_ssize_t length, Py_ssize_t *offset)
{
    if (o == NULL) {
        *offset = 0;
    }
    else if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "offset must be an integer");
        return -1;
    }
    else {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow || value < 0 || value > length) {
            goto short_data;
        }
        *offset = (Py_ssize_t)value;
    }
    if (length - *offset >= RECORD_HEADER_SIZE) {
        return 0;
    }
short_data:
    PyErr_SetString(PyExc_ValueError, "record header needs 8 bytes");
    return -1;
}

static PyObject *
header_tuple(const unsigned char *h)
{
    PyObject *out = PyTuple_New(5);
    if (out == NULL) {
        return NULL;
    }
    long fields[5] = {h[0], h[1], (h[2] << 8) | h[3], (h[4] << 8) | h[5], h[6]};
    for (int i = 0; i < 5; i++) {
        PyObject *field = PyLong_FromLong(fields[i]);
        if (field == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, field);
    }
    return out;
}

static PyObject *
codec_parse_record_header(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *argv[2];
    Py_buffer buffer;
    Py_ssize_t offset;
    if (kwnames == NULL && nargs == 1 && PyBytes_Check(args[0]) &&
        PyBytes_GET_SIZE(args[0]) >= RECORD_HEADER_SIZE) { /* the hot path: a header at 0 */
        return header_tuple((const unsigned char *)PyBytes_AS_STRING(args[0]));
    }
    if (bind_args(&header_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    if (PyBytes_Check(argv[0])) { /* the common case, without the buffer protocol */
        if (header_offset(argv[1], PyBytes_GET_SIZE(argv[0]), &offset) < 0) {
            return NULL;
        }
        return header_tuple((const unsigned char *)PyBytes_AS_STRING(argv[0]) + offset);
    }
    if (get_byte_buffer(argv[0], &buffer) < 0) {
        return NULL;
    }
    PyObject *out = header_offset(argv[1], buffer.len, &offset) < 0
                        ? NULL
                        : header_tuple((const unsigned char *)buffer.buf + offset);
    PyBuffer_Release(&buffer);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* FastCGI record framing: what every request pays for.                                       */

#define FCGI_VERSION 1
#define TYPE_END_REQUEST 3
#define TYPE_STDIN 5
#define TYPE_STDOUT 6
#define TYPE_STDERR 7
#define TYPE_DATA 8
#define RECORD_STEP 65528   /* the largest 8-byte aligned content length: no padding needed */
#define END_BODY_SIZE 8     /* appStatus (4), protocolStatus (1), reserved (3) */
#define APP_STATUS_MASK 0xFFFFFFFFull /* appStatus is 32 bits; larger or negative values wrap */

/* A memoryview of data indexed by byte (another item format is cast to "B"). */
static PyObject *
byte_memoryview(PyObject *data)
{
    PyObject *view = PyMemoryView_FromObject(data);
    if (view == NULL) {
        return NULL;
    }
    const char *format = PyMemoryView_GET_BUFFER(view)->format;
    if (format == NULL || strcmp(format, "B") == 0) {
        return view;
    }
    PyObject *cast = PyObject_CallMethod(view, "cast", "s", "B");
    Py_DECREF(view);
    return cast;
}

/* An integer argument (default 0 when absent); TypeError with message for anything else. Values
 * beyond long long are clamped: callers only compare them with buffer sizes. */
static int
integer_argument(PyObject *o, const char *message, long long *value)
{
    if (o == NULL) {
        *value = 0;
        return 0;
    }
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, message);
        return -1;
    }
    int overflow;
    *value = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (*value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow) {
        *value = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    }
    return 0;
}

static PyObject *
record_tuple(int record_type, long request_id, PyObject *content)
{
    PyObject *record = PyTuple_New(3), *type = PyLong_FromLong(record_type);
    PyObject *id = PyLong_FromLong(request_id);
    if (record == NULL || type == NULL || id == NULL) {
        Py_XDECREF(record);
        Py_XDECREF(type);
        Py_XDECREF(id);
        Py_DECREF(content);
        return NULL;
    }
    PyTuple_SET_ITEM(record, 0, type);
    PyTuple_SET_ITEM(record, 1, id);
    PyTuple_SET_ITEM(record, 2, content);
    return record;
}

/* The content of one record: a copy, or a slice of *view (made on first use) for stream content
 * of view_from bytes or more. */
static PyObject *
record_content(PyObject *data, PyObject **view, const unsigned char *buf, Py_ssize_t start,
               Py_ssize_t length, int record_type, long long view_from)
{
    if (view_from > 0 && length >= view_from &&
        (record_type == TYPE_STDIN || record_type == TYPE_DATA)) {
        if (*view == NULL && (*view = byte_memoryview(data)) == NULL) {
            return NULL;
        }
        return PySequence_GetSlice(*view, start, start + length);
    }
    return PyBytes_FromStringAndSize((const char *)buf + start, length);
}

/* Every whole record from pos on, as a list; *pos ends after the last one. Every length is
 * compared with what is left of the buffer before anything is read. */
static PyObject *
split_loop(PyObject *data, const unsigned char *buf, Py_ssize_t end, Py_ssize_t *pos,
           long long view_from)
{
    PyObject *records = PyList_New(0), *view = NULL;
    Py_ssize_t p = *pos;
    while (records != NULL && end - p >= RECORD_HEADER_SIZE) {
        const unsigned char *h = buf + p;
        Py_ssize_t length = ((Py_ssize_t)h[4] << 8) | h[5], padding = h[6];
        Py_ssize_t start = p + RECORD_HEADER_SIZE;
        if (h[0] != FCGI_VERSION || length + padding > end - start) {
            break;
        }
        PyObject *content = record_content(data, &view, buf, start, length, h[1], view_from);
        PyObject *record =
            content == NULL ? NULL : record_tuple(h[1], ((long)h[2] << 8) | h[3], content);
        if (record == NULL || PyList_Append(records, record) < 0) {
            Py_XDECREF(record);
            Py_CLEAR(records);
            break;
        }
        Py_DECREF(record);
        p = start + length + padding;
    }
    Py_XDECREF(view);
    *pos = p;
    return records;
}

static const char *const split_params[] = {"data", "offset", "view_from"};
static const signature split_sig = {"split_records", split_params, 3, 1};

static PyObject *
codec_split_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[3];
    long long offset, view_from;
    Py_buffer buffer;
    if (bind_args(&split_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    if (!is_byte_buffer(argv[0])) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes, bytearray or memoryview");
        return NULL;
    }
    if (integer_argument(argv[1], "offset must be an integer", &offset) < 0 ||
        integer_argument(argv[2], "view_from must be an integer", &view_from) < 0 ||
        PyObject_GetBuffer(argv[0], &buffer, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *out = NULL;
    if (offset < 0 || offset > buffer.len) {
        PyErr_SetString(PyExc_ValueError, "offset out of range");
    }
    else {
        Py_ssize_t pos = (Py_ssize_t)offset;
        PyObject *records = split_loop(argv[0], buffer.buf, buffer.len, &pos, view_from);
        if (records != NULL) {
            PyObject *end = PyLong_FromSsize_t(pos);
            out = end == NULL ? NULL : PyTuple_Pack(2, records, end);
            Py_XDECREF(end);
            Py_DECREF(records);
        }
    }
    PyBuffer_Release(&buffer);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* The opening of a responder request in one read: what nearly every request starts with.      */

#define TYPE_BEGIN_REQUEST 1
#define TYPE_PARAMS 4
#define ROLE_RESPONDER 1

typedef struct {
    int type;
    long id;
    Py_ssize_t length, padding;
} record_header;

static void
header_fields(const unsigned char *p, record_header *h)
{
    h->type = p[1];
    h->id = ((long)p[2] << 8) | p[3];
    h->length = ((Py_ssize_t)p[4] << 8) | p[5];
    h->padding = p[6];
}

/* The header at pos; 0 when fewer than 8 bytes are left or the version is not 1. */
static int
head_at(const unsigned char *buf, Py_ssize_t end, Py_ssize_t pos, record_header *h)
{
    if (end - pos < RECORD_HEADER_SIZE || buf[pos] != FCGI_VERSION) {
        return 0;
    }
    header_fields(buf + pos, h);
    return 1;
}

typedef struct {
    long request_id;
    int flags;
    int input_done;
    Py_ssize_t params_start;             /* the first PARAMS record's content */
    int params_records;                  /* non-empty PARAMS records */
    Py_ssize_t params_size;              /* their content, in all */
} request_head;

/* Whether buf is exactly BEGIN_REQUEST (responder), PARAMS up to the empty one and optionally
 * the empty STDIN record, all for one request id, with params_size at most max_bytes. */
static int
scan_request_head(const unsigned char *buf, Py_ssize_t end, long long max_bytes,
                  request_head *out)
{
    record_header h;
    if (!head_at(buf, end, 0, &h) || h.type != TYPE_BEGIN_REQUEST || h.id == 0 ||
        h.length != RECORD_HEADER_SIZE || h.padding > end - 2 * RECORD_HEADER_SIZE ||
        ((buf[8] << 8) | buf[9]) != ROLE_RESPONDER) {
        return 0;
    }
    out->request_id = h.id;
    out->flags = buf[10];
    out->params_records = 0;
    out->params_start = out->params_size = 0;
    Py_ssize_t pos = 2 * RECORD_HEADER_SIZE + h.padding;
    for (;;) {
        if (!head_at(buf, end, pos, &h) || h.type != TYPE_PARAMS || h.id != out->request_id ||
            h.length + h.padding > end - pos - RECORD_HEADER_SIZE) {
            return 0;
        }
        Py_ssize_t start = pos + RECORD_HEADER_SIZE;
        pos = start + h.length + h.padding;
        if (h.length == 0) {
            break;
        }
        if (out->params_records++ == 0) {
            out->params_start = start;
        }
        out->params_size += h.length;
        if (out->params_size > max_bytes) {
            return 0;
        }
    }
    out->input_done = pos < end;
    if (out->input_done &&
        (!head_at(buf, end, pos, &h) || h.type != TYPE_STDIN || h.id != out->request_id ||
         h.length != 0 || h.padding != end - pos - RECORD_HEADER_SIZE)) {
        return 0;
    }
    return 1;
}

/* The PARAMS content of a scanned head, joined when it spans several records, decoded. */
static PyObject *
head_params(const unsigned char *buf, const request_head *head)
{
    if (head->params_records <= 1) {
        return head->params_records == 0
                   ? PyList_New(0)
                   : decode_pairs(buf + head->params_start, head->params_size);
    }
    unsigned char *joined = PyMem_Malloc(head->params_size);
    if (joined == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t pos = head->params_start - RECORD_HEADER_SIZE, filled = 0;
    record_header h;
    while (filled < head->params_size) { /* the records were checked by scan_request_head */
        header_fields(buf + pos, &h);
        memcpy(joined + filled, buf + pos + RECORD_HEADER_SIZE, h.length);
        filled += h.length;
        pos += RECORD_HEADER_SIZE + h.length + h.padding;
    }
    PyObject *pairs = decode_pairs(joined, head->params_size);
    PyMem_Free(joined);
    return pairs;
}

static PyObject *
head_tuple(const request_head *head, PyObject *params)
{
    return Py_BuildValue("(liNO)", head->request_id, head->flags, params,
                         head->input_done ? Py_True : Py_False);
}

static const char *const request_head_params[] = {"data", "max_params_bytes",
                                                  "max_params_count"};
static const signature request_head_sig = {"read_request_head", request_head_params, 3, 3};

static PyObject *
codec_read_request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    PyObject *argv[3];
    Py_buffer buffer;
    if (bind_args(&request_head_sig, args, nargs, kwnames, argv) < 0 ||
        get_byte_buffer(argv[0], &buffer) < 0) {
        return NULL;
    }
    long long max_bytes, max_count;
    PyObject *out = NULL;
    request_head head;
    if (integer_argument(argv[1], "limits must be integers", &max_bytes) == 0 &&
        integer_argument(argv[2], "limits must be integers", &max_count) == 0) {
        if (!scan_request_head(buffer.buf, buffer.len, max_bytes, &head)) {
            out = Py_NewRef(Py_None);
        }
        else {
            PyObject *params = head_params(buffer.buf, &head);
            if (params == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear(); /* malformed pairs: the general path reports them */
                out = Py_NewRef(Py_None);
            }
            else if (params != NULL && PyList_GET_SIZE(params) > max_count) {
                Py_DECREF(params);
                out = Py_NewRef(Py_None);
            }
            else if (params != NULL) {
                out = head_tuple(&head, params);
            }
        }
    }
    PyBuffer_Release(&buffer);
    return out;
}

/* A header or status field: TypeError unless an int, ValueError outside 0..limit. */
static int
field_argument(PyObject *o, long limit, const char *what, long *value)
{
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an integer", what);
        return -1;
    }
    int overflow;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || v < 0 || v > limit) {
        PyErr_Format(PyExc_ValueError, "%s out of range", what);
        return -1;
    }
    *value = v;
    return 0;
}

static unsigned char *
put_header(unsigned char *out, int record_type, long request_id, Py_ssize_t length, int padding)
{
    out[0] = FCGI_VERSION;
    out[1] = (unsigned char)record_type;
    out[2] = (unsigned char)(request_id >> 8);
    out[3] = (unsigned char)request_id;
    out[4] = (unsigned char)(length >> 8);
    out[5] = (unsigned char)length;
    out[6] = (unsigned char)padding;
    out[7] = 0;
    return out + RECORD_HEADER_SIZE;
}

/* Bytes that size bytes of content take as records (none for no content); -1 if too many. */
static Py_ssize_t
framed_size(Py_ssize_t size)
{
    Py_ssize_t rest = size % RECORD_STEP;
    Py_ssize_t last = rest ? RECORD_HEADER_SIZE + rest + (-rest & 7) : 0;
    Py_ssize_t full = size / RECORD_STEP;
    if (full > (PY_SSIZE_T_MAX - 64 - last) / (RECORD_HEADER_SIZE + RECORD_STEP)) {
        return -1;
    }
    return full * (RECORD_HEADER_SIZE + RECORD_STEP) + last;
}

static unsigned char *
put_records(unsigned char *out, int record_type, long request_id, const unsigned char *data,
            Py_ssize_t size)
{
    for (Py_ssize_t start = 0; start < size; start += RECORD_STEP) {
        Py_ssize_t length = size - start < RECORD_STEP ? size - start : RECORD_STEP;
        int padding = (int)(-length & 7);
        out = put_header(out, record_type, request_id, length, padding);
        memcpy(out, data + start, (size_t)length);
        memset(out + length, 0, (size_t)padding);
        out += length + padding;
    }
    return out;
}

static const char *const frame_records_params[] = {"record_type", "request_id", "data"};
static const signature frame_records_sig = {"frame_records", frame_records_params, 3, 3};

static PyObject *
codec_frame_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[3];
    long record_type, request_id;
    Py_buffer buffer;
    if (bind_args(&frame_records_sig, args, nargs, kwnames, argv) < 0 ||
        field_argument(argv[0], 0xFF, "record type", &record_type) < 0 ||
        field_argument(argv[1], 0xFFFF, "request id", &request_id) < 0 ||
        get_byte_buffer(argv[2], &buffer) < 0) {
        return NULL;
    }
    Py_ssize_t size = framed_size(buffer.len);
    unsigned char *out = NULL;
    PyObject *framed = size < 0 ? PyErr_NoMemory() : new_bytes(size, &out);
    if (framed != NULL) {
        put_records(out, (int)record_type, request_id, buffer.buf, buffer.len);
    }
    PyBuffer_Release(&buffer);
    return framed;
}

static const char *const frame_end_params[] = {"request_id", "data", "app_status",
                                               "protocol_status", "stderr_sent"};
static const signature frame_end_sig = {"frame_end", frame_end_params, 5, 1};

typedef struct {
    long request_id;
    unsigned long long app_status;
    long protocol_status;
    int stderr_sent;
} end_fields;

/* The arguments of frame_end after data, checked in the Python twin's order. */
static int
end_arguments(PyObject **argv, end_fields *end)
{
    end->app_status = 0;
    end->protocol_status = 0;
    end->stderr_sent = 0;
    if (argv[2] != NULL) {
        if (!PyLong_Check(argv[2])) {
            PyErr_SetString(PyExc_TypeError, "app status must be an integer");
            return -1;
        }
        end->app_status = PyLong_AsUnsignedLongLongMask(argv[2]) & APP_STATUS_MASK;
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    if (argv[3] != NULL &&
        field_argument(argv[3], 0xFF, "protocol status", &end->protocol_status) < 0) {
        return -1;
    }
    if (argv[4] != NULL && (end->stderr_sent = PyObject_IsTrue(argv[4])) < 0) {
        return -1;
    }
    return 0;
}

static void
put_end(unsigned char *out, const end_fields *end, const unsigned char *data, Py_ssize_t size)
{
    out = put_records(out, TYPE_STDOUT, end->request_id, data, size);
    out = put_header(out, TYPE_STDOUT, end->request_id, 0, 0);
    if (end->stderr_sent) {
        out = put_header(out, TYPE_STDERR, end->request_id, 0, 0);
    }
    out = put_header(out, TYPE_END_REQUEST, end->request_id, END_BODY_SIZE, 0);
    out[0] = (unsigned char)(end->app_status >> 24);
    out[1] = (unsigned char)(end->app_status >> 16);
    out[2] = (unsigned char)(end->app_status >> 8);
    out[3] = (unsigned char)end->app_status;
    out[4] = (unsigned char)end->protocol_status;
    memset(out + 5, 0, 3);
}

static PyObject *
codec_frame_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[5];
    end_fields end;
    Py_buffer buffer = {.buf = "", .len = 0, .obj = NULL};
    if (bind_args(&frame_end_sig, args, nargs, kwnames, argv) < 0 ||
        field_argument(argv[0], 0xFFFF, "request id", &end.request_id) < 0 ||
        (argv[1] != NULL && get_byte_buffer(argv[1], &buffer) < 0)) {
        return NULL;
    }
    PyObject *framed = NULL;
    if (end_arguments(argv, &end) == 0) {
        Py_ssize_t size = framed_size(buffer.len);
        Py_ssize_t tail = RECORD_HEADER_SIZE * (end.stderr_sent ? 3 : 2) + END_BODY_SIZE;
        unsigned char *out = NULL;
        framed = size < 0 ? PyErr_NoMemory() : new_bytes(size + tail, &out);
        if (framed != NULL) {
            put_end(out, &end, buffer.buf, buffer.len);
        }
    }
    if (buffer.obj != NULL) {
        PyBuffer_Release(&buffer);
    }
    return framed;
}

/* ------------------------------------------------------------------------------------------ */
/* pack, SHA-1 and uid.                                                                        */

static const char PACK_ALPHABET[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

#define UID_RANDOM_BYTES 16 /* CSPRNG bytes per uid: 128 bits make the id unguessable */
#define UID_HEAD_BYTES 16   /* seconds (8), microseconds (4) and pid (4), big-endian */
#define SHA1_DIGEST_SIZE 20

/* ceil(8 * size / nbits) without overflowing for any size. */
static Py_ssize_t
packed_length(Py_ssize_t size, int nbits)
{
    return (size / nbits) * 8 + ((size % nbits) * 8 + nbits - 1) / nbits;
}

/* Least significant bit first: each byte lands above the bits still held. */
static void
pack_into(const unsigned char *data, Py_ssize_t size, int nbits, unsigned char *out)
{
    unsigned int mask = (1u << nbits) - 1, acc = 0;
    int held = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        acc |= (unsigned int)data[i] << held;
        held += 8;
        while (held >= nbits) {
            *out++ = (unsigned char)PACK_ALPHABET[acc & mask];
            acc >>= nbits;
            held -= nbits;
        }
    }
    if (held > 0) {
        *out = (unsigned char)PACK_ALPHABET[acc & mask];
    }
}

static PyObject *
pack_to_str(const unsigned char *data, Py_ssize_t size, int nbits)
{
    unsigned char *out;
    PyObject *s = new_ascii(packed_length(size, nbits), &out);
    if (s != NULL) {
        pack_into(data, size, nbits, out);
    }
    return s;
}

/* nbits as a C int; -1 with TypeError (message) if not an int, 0 with *nbits = 0 if huge. */
static int
int_argument(PyObject *o, int *nbits, const char *message)
{
    if (!PyLong_Check(o)) {
        PyErr_SetString(PyExc_TypeError, message);
        return -1;
    }
    int overflow;
    long value = PyLong_AsLongAndOverflow(o, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    /* A value out of int range is no valid number of bits: map it to one that is rejected. */
    *nbits = (overflow || value < -1 || value > 6) ? 3 : (int)value;
    return 0;
}

static int
invalid_bits(PyObject *o)
{
    PyErr_Format(PyExc_ValueError, "Invalid number of bits: %S", o);
    return -1;
}

static const char *const pack_params[] = {"data", "nbits"};
static const signature pack_sig = {"pack", pack_params, 2, 1};

static PyObject *
codec_pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[2];
    view v;
    int nbits = 5;
    if (bind_args(&pack_sig, args, nargs, kwnames, argv) < 0 ||
        view_utf8(argv[0], &v, "first argument must be a string") < 0) {
        return NULL;
    }
    PyObject *out = NULL;
    if (argv[1] != NULL &&
        (int_argument(argv[1], &nbits, "second argument must be an integer") < 0 ||
         ((nbits < 4 || nbits > 6) && invalid_bits(argv[1]) < 0))) {
        goto done;
    }
    out = pack_to_str(v.data, v.size, nbits);
done:
    view_release(&v);
    return out;
}

/* SHA-1 (FIPS 180-4), only for uid(): a digest of time, pid, random bytes and a node. */
typedef struct {
    uint32_t h[5];
    uint64_t length;
    unsigned char block[64];
    size_t used;
} sha1_ctx;

#define ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* Four rounds of twenty, each with its own function and constant; the message schedule is
 * kept as a rolling window of sixteen words. */
#define SHA1_W(i) (w[(i) & 15] = ROL32(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ \
                                        w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define SHA1_STEP(f, k, wi)                                                                    \
    do {                                                                                       \
        uint32_t t = ROL32(a, 5) + (f) + e + (k) + (wi);                                       \
        e = d;                                                                                 \
        d = c;                                                                                 \
        c = ROL32(b, 30);                                                                      \
        b = a;                                                                                 \
        a = t;                                                                                 \
    } while (0)

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++) {
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    }
    for (int i = 0; i < 16; i++) {
        SHA1_STEP(d ^ (b & (c ^ d)), 0x5A827999u, w[i]);
    }
    for (int i = 16; i < 20; i++) {
        SHA1_STEP(d ^ (b & (c ^ d)), 0x5A827999u, SHA1_W(i));
    }
    for (int i = 20; i < 40; i++) {
        SHA1_STEP(b ^ c ^ d, 0x6ED9EBA1u, SHA1_W(i));
    }
    for (int i = 40; i < 60; i++) {
        SHA1_STEP((b & c) | (d & (b | c)), 0x8F1BBCDCu, SHA1_W(i));
    }
    for (int i = 60; i < 80; i++) {
        SHA1_STEP(b ^ c ^ d, 0xCA62C1D6u, SHA1_W(i));
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void
sha1_init(sha1_ctx *ctx)
{
    static const uint32_t initial[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
                                        0xC3D2E1F0u};
    memcpy(ctx->h, initial, sizeof initial);
    ctx->length = 0;
    ctx->used = 0;
}

static void
sha1_update(sha1_ctx *ctx, const unsigned char *data, size_t size)
{
    ctx->length += (uint64_t)size;
    while (size > 0) {
        size_t take = 64 - ctx->used < size ? 64 - ctx->used : size;
        memcpy(ctx->block + ctx->used, data, take);
        ctx->used += take;
        data += take;
        size -= take;
        if (ctx->used == 64) {
            sha1_block(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

static void
sha1_final(sha1_ctx *ctx, unsigned char digest[SHA1_DIGEST_SIZE])
{
    uint64_t bits = ctx->length * 8;
    unsigned char tail[72] = {0x80};
    size_t pad = (ctx->used < 56 ? 56 : 120) - ctx->used;
    for (int i = 0; i < 8; i++) {
        tail[pad + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    }
    sha1_update(ctx, tail, pad + 8);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (unsigned char)(ctx->h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(ctx->h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(ctx->h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)ctx->h[i];
    }
}

static PyObject *
codec_sha1(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    sha1_ctx ctx;
    unsigned char digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, (const unsigned char *)PyBytes_AS_STRING(data),
                (size_t)PyBytes_GET_SIZE(data));
    sha1_final(&ctx, digest);
    return PyBytes_FromStringAndSize((const char *)digest, SHA1_DIGEST_SIZE);
}

/* Random bytes through os.urandom, where the platform offers no direct call. */
static int
urandom_python(unsigned char *out, Py_ssize_t size)
{
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL) {
        return -1;
    }
    PyObject *bytes = PyObject_CallMethod(os, "urandom", "n", size);
    Py_DECREF(os);
    if (bytes == NULL) {
        return -1;
    }
    int ok = PyBytes_Check(bytes) && PyBytes_GET_SIZE(bytes) == size;
    if (ok) {
        memcpy(out, PyBytes_AS_STRING(bytes), (size_t)size);
    }
    else {
        PyErr_SetString(PyExc_RuntimeError, "os.urandom returned the wrong number of bytes");
    }
    Py_DECREF(bytes);
    return ok ? 0 : -1;
}

static int
fill_random(unsigned char *out, size_t size)
{
#if defined(SMISK_HAVE_SYS_RANDOM) && defined(__linux__)
    size_t got = 0;
    while (got < size) {
        ssize_t n = getrandom(out + got, size - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got == size) {
        return 0;
    }
#elif defined(SMISK_HAVE_SYS_RANDOM)
    if (getentropy(out, size) == 0) {
        return 0;
    }
#endif
    return urandom_python(out, (Py_ssize_t)size);
}

static void
put_be32(unsigned char *out, uint32_t value)
{
    for (int i = 0; i < 4; i++) {
        out[i] = (unsigned char)(value >> (24 - 8 * i));
    }
}

static int
uid_digest(const unsigned char *node, Py_ssize_t node_size, unsigned char digest[20])
{
    unsigned char seed[UID_HEAD_BYTES + UID_RANDOM_BYTES];
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    uint64_t seconds = (uint64_t)now.tv_sec;
    put_be32(seed, (uint32_t)(seconds >> 32));
    put_be32(seed + 4, (uint32_t)seconds);
    put_be32(seed + 8, (uint32_t)(now.tv_nsec / 1000));
    put_be32(seed + 12, (uint32_t)getpid());
    if (fill_random(seed + UID_HEAD_BYTES, UID_RANDOM_BYTES) < 0) {
        return -1;
    }
    sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, seed, sizeof seed);
    sha1_update(&ctx, node, (size_t)node_size);
    sha1_final(&ctx, digest);
    return 0;
}

static const char *const uid_params[] = {"nbits", "node"};
static const signature uid_sig = {"uid", uid_params, 2, 0};

/* The node argument as bytes: str (as UTF-8), bytes or None. */
static int
uid_node(PyObject *o, view *v)
{
    if (o == NULL || o == Py_None) {
        v->data = (const unsigned char *)"";
        v->size = 0;
        v->owner = NULL;
        return 0;
    }
    return view_utf8(o, v, "second argument must be a string");
}

static PyObject *
codec_uid(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *argv[2];
    int nbits = 5;
    view node;
    if (bind_args(&uid_sig, args, nargs, kwnames, argv) < 0) {
        return NULL;
    }
    int has_bits = argv[0] != NULL && argv[0] != Py_None;
    if (has_bits && int_argument(argv[0], &nbits, "first argument must be an integer") < 0) {
        return NULL;
    }
    if (uid_node(argv[1], &node) < 0) {
        return NULL;
    }
    PyObject *out = NULL;
    unsigned char digest[SHA1_DIGEST_SIZE];
    int raw = nbits == 0 || nbits == -1;
    if (!raw && (nbits < 4 || nbits > 6)) {
        invalid_bits(argv[0]);
    }
    else if (uid_digest(node.data, node.size, digest) == 0) {
        out = raw ? PyBytes_FromStringAndSize((const char *)digest, SHA1_DIGEST_SIZE)
                         : pack_to_str(digest, SHA1_DIGEST_SIZE, nbits);
    }
    view_release(&node);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* URL percent-encoding.                                                                       */

#define URL_ESCAPE 1 /* escape(): not allowed anywhere in a URL */
#define URL_ENCODE 2 /* encode(): also the delimiters of URL components */

/* Bit URL_ESCAPE: 0x00-0x20, 0x7F-0xFF and "#%:<>@[\]^`{|}; bit URL_ENCODE: those and $&+,/;=?.
 * Generated from the sets in _codec_py.py. */
static const unsigned char URL_CLASS[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 0, 3, 3, 2, 3, 2, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 3, 2, 3, 2,
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 0,
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 0, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

static const char HEX_UPPER[] = "0123456789ABCDEF";

/* Value of a hex digit, or 16 for anything else. */
static const unsigned char HEX_VALUE[256] = {
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x00 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x10 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x20 */
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  16, 16, 16, 16, 16, 16, /* 0x30 */
    16, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x40 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x50 */
    16, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x60 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x70 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x80 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0x90 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xA0 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xB0 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xC0 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xD0 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xE0 */
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, /* 0xF0 */
};

static Py_ssize_t
count_unsafe(const unsigned char *data, Py_ssize_t size, unsigned char mask)
{
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        count += (URL_CLASS[data[i]] & mask) != 0;
    }
    return count;
}

static void
percent_encode_into(const unsigned char *data, Py_ssize_t size, unsigned char mask,
                     unsigned char *out)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (URL_CLASS[c] & mask) {
            out[0] = '%';
            out[1] = (unsigned char)HEX_UPPER[c >> 4];
            out[2] = (unsigned char)HEX_UPPER[c & 15];
            out += 3;
        }
        else {
            *out++ = c;
        }
    }
}

static PyObject *
percent_encode(PyObject *s, unsigned char mask)
{
    view v;
    if (view_utf8(s, &v, "first argument must be a string") < 0) {
        return NULL;
    }
    Py_ssize_t count = count_unsafe(v.data, v.size, mask);
    PyObject *out = NULL;
    unsigned char *data;
    if (count == 0) {
        out = Py_NewRef(s);
    }
    else if (v.size > (PY_SSIZE_T_MAX - v.size) / 2) {
        PyErr_NoMemory();
    }
    else {
        Py_ssize_t size = v.size + 2 * count;
        out = PyUnicode_Check(s) ? new_ascii(size, &data) : new_bytes(size, &data);
        if (out != NULL) {
            percent_encode_into(v.data, v.size, mask, data);
        }
    }
    view_release(&v);
    return out;
}

static PyObject *
codec_url_encode(PyObject *module, PyObject *s)
{
    return percent_encode(s, URL_ENCODE);
}

static PyObject *
codec_url_escape(PyObject *module, PyObject *s)
{
    return percent_encode(s, URL_ESCAPE);
}

/* Whether data[i] starts a valid %XX escape; never reads past data[size - 1]. */
static inline int
is_escape(const unsigned char *data, Py_ssize_t i, Py_ssize_t size)
{
    return size - i >= 3 && HEX_VALUE[data[i + 1]] < 16 && HEX_VALUE[data[i + 2]] < 16;
}

/* Decode %XX (and '+' to a space when plus is set) into out; returns the length written.
 * out may be as long as the input: the result is never longer. */
static Py_ssize_t
percent_decode_into(const unsigned char *data, Py_ssize_t size, int plus, unsigned char *out)
{
    unsigned char *start = out;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (c == '%' && is_escape(data, i, size)) {
            *out++ = (unsigned char)((HEX_VALUE[data[i + 1]] << 4) | HEX_VALUE[data[i + 2]]);
            i += 2;
        }
        else {
            *out++ = (plus && c == '+') ? ' ' : c;
        }
    }
    return out - start;
}

/* Number of valid %XX escapes, hopping from '%' to '%'. */
static Py_ssize_t
count_escapes(const unsigned char *data, Py_ssize_t size)
{
    Py_ssize_t count = 0, i = 0;
    while (i < size) {
        const unsigned char *p = memchr(data + i, '%', (size_t)(size - i));
        if (p == NULL) {
            break;
        }
        i = p - data;
        if (is_escape(data, i, size)) {
            count++;
            i += 3;
        }
        else {
            i++;
        }
    }
    return count;
}

/* url_decode for input that holds at least one escape; str results are UTF-8 "replace". */
static PyObject *
percent_decode_changed(const unsigned char *data, Py_ssize_t size, Py_ssize_t count, int text)
{
    Py_ssize_t out_size = size - 2 * count;
    unsigned char *out;
    if (!text) {
        PyObject *result = new_bytes(out_size, &out);
        if (result != NULL) {
            percent_decode_into(data, size, 0, out);
        }
        return result;
    }
    unsigned char stack[STACK_BUFFER_SIZE];
    out = out_size <= STACK_BUFFER_SIZE ? stack : PyMem_Malloc((size_t)out_size);
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    percent_decode_into(data, size, 0, out);
    PyObject *result = PyUnicode_DecodeUTF8((const char *)out, out_size, "replace");
    if (out != stack) {
        PyMem_Free(out);
    }
    return result;
}

static PyObject *
codec_url_decode(PyObject *module, PyObject *s)
{
    if (PyUnicode_Check(s)) {
        /* Like the Python twin: a str without '%' is returned before it is ever encoded. */
        Py_ssize_t found = PyUnicode_FindChar(s, '%', 0, PyUnicode_GET_LENGTH(s), 1);
        if (found == -2) {
            return NULL;
        }
        if (found == -1) {
            return Py_NewRef(s);
        }
    }
    view v;
    if (view_utf8(s, &v, "first argument must be a string") < 0) {
        return NULL;
    }
    Py_ssize_t count = count_escapes(v.data, v.size);
    PyObject *out = count == 0 ? Py_NewRef(s)
                               : percent_decode_changed(v.data, v.size, count, PyUnicode_Check(s));
    view_release(&v);
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* decompose_query.                                                                            */

typedef enum { DECODE_LATIN1, DECODE_UTF8, DECODE_NAMED } decoder_kind;

typedef struct {
    decoder_kind kind;
    const char *charset; /* for DECODE_NAMED */
    int tolerant;
    unsigned char separator;
    int cookie;            /* separator ';': trim names and values, skip nameless segments */
    unsigned char *buffer; /* scratch space as long as the input */
} query_options;

/* charset None reads bytes as latin-1; the names the interpreter itself maps straight to its
 * UTF-8 and latin-1 decoders are taken directly, every other name goes through codec lookup. */
static int
query_charset(PyObject *o, query_options *opts)
{
    opts->charset = NULL;
    if (o == NULL) {
        opts->kind = DECODE_UTF8;
        return 0;
    }
    if (o == Py_None) {
        opts->kind = DECODE_LATIN1;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "charset must be a str or None");
        return -1;
    }
    Py_ssize_t size;
    const char *name = PyUnicode_AsUTF8AndSize(o, &size);
    if (name == NULL) {
        return -1;
    }
    if ((Py_ssize_t)strlen(name) != size) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return -1;
    }
    int utf8 = strcmp(name, "utf-8") == 0 || strcmp(name, "utf8") == 0;
    int latin1 = strcmp(name, "latin-1") == 0 || strcmp(name, "latin1") == 0 ||
                 strcmp(name, "iso-8859-1") == 0;
    opts->kind = utf8 ? DECODE_UTF8 : latin1 ? DECODE_LATIN1 : DECODE_NAMED;
    opts->charset = name;
    return 0;
}

static int
query_separator(PyObject *o, query_options *opts)
{
    if (o == NULL) {
        opts->separator = '&';
    }
    else if (!PyUnicode_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "separator must be a str");
        return -1;
    }
    else if (PyUnicode_GET_LENGTH(o) != 1 || PyUnicode_READ_CHAR(o, 0) > 127) {
        PyErr_SetString(PyExc_ValueError, "separator must be a single ASCII character");
        return -1;
    }
    else {
        opts->separator = (unsigned char)PyUnicode_READ_CHAR(o, 0);
    }
    opts->cookie = opts->separator == ';';
    return 0;
}

static PyObject *
decode_text(const unsigned char *data, Py_ssize_t size, const query_options *opts,
            const char *errors)
{
    switch (opts->kind) {
    case DECODE_LATIN1:
        return PyUnicode_DecodeLatin1((const char *)data, size, errors);
    case DECODE_UTF8:
        return PyUnicode_DecodeUTF8((const char *)data, size, errors);
    default:
        return PyUnicode_Decode((const char *)data, size, opts->charset, errors);
    }
}

/* '+' to space and %XX to bytes, through the scratch buffer only when something changes. */
static const unsigned char *
unquote_plus(const unsigned char *data, Py_ssize_t *size, const query_options *opts)
{
    for (Py_ssize_t i = 0; i < *size; i++) {
        if (data[i] == '%' || data[i] == '+') {
            *size = percent_decode_into(data, *size, 1, opts->buffer);
            return opts->buffer;
        }
    }
    return data;
}

static PyObject *
query_key(const unsigned char *data, Py_ssize_t size, const query_options *opts)
{
    data = unquote_plus(data, &size, opts);
    return decode_text(data, size, opts, "replace");
}

static PyObject *
query_value(const unsigned char *data, Py_ssize_t size, const query_options *opts)
{
    data = unquote_plus(data, &size, opts);
    PyObject *value = decode_text(data, size, opts, NULL);
    if (value == NULL && opts->tolerant && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        value = PyUnicode_DecodeLatin1((const char *)data, size, NULL);
    }
    return value;
}

/* First value as is; a second turns the entry into a list; later ones are appended. */
static int
query_add(PyObject *result, PyObject *key, PyObject *value)
{
    PyObject *old = PyDict_GetItemWithError(result, key);
    if (old == NULL) {
        return PyErr_Occurred() ? -1 : PyDict_SetItem(result, key, value);
    }
    if (PyList_CheckExact(old)) {
        return PyList_Append(old, value);
    }
    PyObject *list = PyList_New(2);
    if (list == NULL) {
        return -1;
    }
    PyList_SET_ITEM(list, 0, Py_NewRef(old));
    PyList_SET_ITEM(list, 1, Py_NewRef(value));
    int status = PyDict_SetItem(result, key, list);
    Py_DECREF(list);
    return status;
}

static int
is_cookie_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static void
trim(const unsigned char **start, const unsigned char **end)
{
    while (*start < *end && is_cookie_space(**start)) {
        (*start)++;
    }
    while (*end > *start && is_cookie_space((*end)[-1])) {
        (*end)--;
    }
}

/* One non-empty segment [p, end): key, optional '=' and value. */
static int
query_segment(PyObject *result, const unsigned char *p, const unsigned char *end,
              const query_options *opts)
{
    const unsigned char *eq = memchr(p, '=', (size_t)(end - p));
    const unsigned char *key_end = eq != NULL ? eq : end;
    const unsigned char *value = eq != NULL ? eq + 1 : end, *value_end = end;
    if (opts->cookie) {
        trim(&p, &key_end);
        trim(&value, &value_end);
        if (p == key_end) {
            return 0;
        }
    }
    PyObject *k = query_key(p, key_end - p, opts);
    if (k == NULL) {
        return -1;
    }
    PyObject *v = eq == NULL ? Py_NewRef(Py_None) : query_value(value, value_end - value, opts);
    int status = v == NULL ? -1 : query_add(result, k, v);
    Py_DECREF(k);
    Py_XDECREF(v);
    return status;
}

static PyObject *
parse_query(const unsigned char *data, Py_ssize_t size, const query_options *opts)
{
    PyObject *result = PyDict_New();
    const unsigned char *p = data, *end = data + size;
    while (result != NULL && p < end) {
        const unsigned char *stop = memchr(p, opts->separator, (size_t)(end - p));
        if (stop == NULL) {
            stop = end;
        }
        if (stop > p && query_segment(result, p, stop, opts) < 0) {
            Py_CLEAR(result);
        }
        p = stop + 1;
    }
    return result;
}

static const char *const query_params[] = {"s", "charset", "tolerant", "separator"};
static const signature query_sig = {"decompose_query", query_params, 4, 1};

static int
query_options_from(PyObject *const *argv, query_options *opts)
{
    if (!PyUnicode_Check(argv[0]) && !PyBytes_Check(argv[0])) {
        PyErr_SetString(PyExc_TypeError, "first argument must be a string");
        return -1;
    }
    if (query_charset(argv[1], opts) < 0) {
        return -1;
    }
    opts->tolerant = argv[2] == NULL ? 1 : PyObject_IsTrue(argv[2]);
    if (opts->tolerant < 0) {
        return -1;
    }
    return query_separator(argv[3], opts);
}

static PyObject *
codec_decompose_query(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    PyObject *argv[4];
    query_options opts;
    view v;
    if (bind_args(&query_sig, args, nargs, kwnames, argv) < 0 ||
        query_options_from(argv, &opts) < 0 ||
        view_utf8(argv[0], &v, "first argument must be a string") < 0) {
        return NULL;
    }
    unsigned char stack[STACK_BUFFER_SIZE];
    opts.buffer = v.size <= STACK_BUFFER_SIZE ? stack : PyMem_Malloc((size_t)v.size);
    PyObject *result = opts.buffer == NULL ? PyErr_NoMemory() : parse_query(v.data, v.size, &opts);
    if (opts.buffer != stack) {
        PyMem_Free(opts.buffer);
    }
    view_release(&v);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* XML escape and unescape, for bytes and for every str kind.                                  */

/* Extra characters each escaped character needs: &amp; &lt; &gt; &quot;. */
static inline Py_ssize_t
xml_extra(Py_UCS4 c)
{
    switch (c) {
    case '&':
        return 4;
    case '<':
    case '>':
        return 3;
    case '"':
        return 5;
    default:
        return 0;
    }
}

/* Length of the entity at s[i] (one of the four), or 0; never reads past s[size - 1]. */
#define DEFINE_ENTITY_AT(CH)                                                                    \
    static inline Py_ssize_t entity_at_##CH(const CH *s, Py_ssize_t i, Py_ssize_t size)         \
    {                                                                                           \
        Py_ssize_t left = size - i;                                                             \
        if (left >= 4 && s[i + 2] == 't' && s[i + 3] == ';' &&                                  \
            (s[i + 1] == 'l' || s[i + 1] == 'g')) {                                             \
            return 4;                                                                           \
        }                                                                                       \
        if (left >= 5 && s[i + 1] == 'a' && s[i + 2] == 'm' && s[i + 3] == 'p' &&               \
            s[i + 4] == ';') {                                                                  \
            return 5;                                                                           \
        }                                                                                       \
        if (left >= 6 && s[i + 1] == 'q' && s[i + 2] == 'u' && s[i + 3] == 'o' &&               \
            s[i + 4] == 't' && s[i + 5] == ';') {                                               \
            return 6;                                                                           \
        }                                                                                       \
        return 0;                                                                               \
    }

#define DEFINE_XML(CH)                                                                          \
    DEFINE_ENTITY_AT(CH)                                                                        \
    MAYBE_UNUSED static Py_ssize_t xml_escape_extra_##CH(const CH *s, Py_ssize_t size)          \
    {                                                                                           \
        Py_ssize_t extra = 0;                                                                   \
        for (Py_ssize_t i = 0; i < size; i++) {                                                 \
            extra += xml_extra(s[i]);                                                           \
        }                                                                                       \
        return extra;                                                                           \
    }                                                                                           \
    MAYBE_UNUSED static void xml_escape_fill_##CH(const CH *s, Py_ssize_t size, CH *out)        \
    {                                                                                           \
        for (Py_ssize_t i = 0; i < size; i++) {                                                 \
            const char *entity;                                                                 \
            switch (s[i]) {                                                                     \
            case '&':                                                                           \
                entity = "&amp;";                                                               \
                break;                                                                          \
            case '<':                                                                           \
                entity = "&lt;";                                                                \
                break;                                                                          \
            case '>':                                                                           \
                entity = "&gt;";                                                                \
                break;                                                                          \
            case '"':                                                                           \
                entity = "&quot;";                                                              \
                break;                                                                          \
            default:                                                                            \
                *out++ = s[i];                                                                  \
                continue;                                                                       \
            }                                                                                   \
            while (*entity) {                                                                   \
                *out++ = (CH)*entity++;                                                         \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    static Py_ssize_t xml_unescape_saved_##CH(const CH *s, Py_ssize_t size)                     \
    {                                                                                           \
        Py_ssize_t saved = 0;                                                                   \
        for (Py_ssize_t i = 0; i < size; i++) {                                                 \
            Py_ssize_t n = s[i] == '&' ? entity_at_##CH(s, i, size) : 0;                        \
            if (n > 0) {                                                                        \
                saved += n - 1;                                                                 \
                i += n - 1;                                                                     \
            }                                                                                   \
        }                                                                                       \
        return saved;                                                                           \
    }                                                                                           \
    static void xml_unescape_fill_##CH(const CH *s, Py_ssize_t size, CH *out)                   \
    {                                                                                           \
        for (Py_ssize_t i = 0; i < size; i++) {                                                 \
            Py_ssize_t n = s[i] == '&' ? entity_at_##CH(s, i, size) : 0;                        \
            if (n == 0) {                                                                       \
                *out++ = s[i];                                                                  \
                continue;                                                                       \
            }                                                                                   \
            *out++ = n == 5 ? '&' : n == 6 ? '"' : s[i + 1] == 'l' ? '<' : '>';                 \
            i += n - 1;                                                                         \
        }                                                                                       \
    }

DEFINE_XML(Py_UCS1)
DEFINE_XML(Py_UCS2)
DEFINE_XML(Py_UCS4)

/* One-byte text (bytes, ASCII and latin-1 str) is the common case: with SSE2, sixteen bytes are
 * tested at a time and the template functions above only finish the last few. */
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>

#define XML_BLOCK 16
#define XML_WEIGHT_FLUSH 50 /* blocks summed per byte lane before it could pass 255 (50 * 5) */

static inline __m128i
xml_load(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

static inline __m128i
bytes_equal(__m128i v, char c)
{
    return _mm_cmpeq_epi8(v, _mm_set1_epi8(c));
}

/* Per byte, the extra length its entity needs: 4, 3, 3 or 5 for & < > ", else 0. */
static inline __m128i
xml_weights(__m128i v)
{
    __m128i amp = _mm_and_si128(bytes_equal(v, '&'), _mm_set1_epi8(4));
    __m128i quot = _mm_and_si128(bytes_equal(v, '"'), _mm_set1_epi8(5));
    __m128i angle = _mm_or_si128(bytes_equal(v, '<'), bytes_equal(v, '>'));
    return _mm_or_si128(_mm_or_si128(amp, quot), _mm_and_si128(angle, _mm_set1_epi8(3)));
}

/* What each byte becomes when escaped, as up to eight bytes written at once, and its length. */
typedef struct {
    unsigned char text[8];
    unsigned char length;
} xml_replacement;

/* Generated: every byte stands for itself except & < > " (see _codec_py.xml_escape). */
static const xml_replacement xml_replacements[256] = {
    {{0x00}, 1}, {{0x01}, 1}, {{0x02}, 1}, {{0x03}, 1}, {{0x04}, 1}, {{0x05}, 1}, {{0x06}, 1}, {{0x07}, 1},
    {{0x08}, 1}, {{0x09}, 1}, {{0x0A}, 1}, {{0x0B}, 1}, {{0x0C}, 1}, {{0x0D}, 1}, {{0x0E}, 1}, {{0x0F}, 1},
    {{0x10}, 1}, {{0x11}, 1}, {{0x12}, 1}, {{0x13}, 1}, {{0x14}, 1}, {{0x15}, 1}, {{0x16}, 1}, {{0x17}, 1},
    {{0x18}, 1}, {{0x19}, 1}, {{0x1A}, 1}, {{0x1B}, 1}, {{0x1C}, 1}, {{0x1D}, 1}, {{0x1E}, 1}, {{0x1F}, 1},
    {{0x20}, 1}, {{0x21}, 1}, {"&quot;", 6}, {{0x23}, 1}, {{0x24}, 1}, {{0x25}, 1}, {"&amp;", 5}, {{0x27}, 1},
    {{0x28}, 1}, {{0x29}, 1}, {{0x2A}, 1}, {{0x2B}, 1}, {{0x2C}, 1}, {{0x2D}, 1}, {{0x2E}, 1}, {{0x2F}, 1},
    {{0x30}, 1}, {{0x31}, 1}, {{0x32}, 1}, {{0x33}, 1}, {{0x34}, 1}, {{0x35}, 1}, {{0x36}, 1}, {{0x37}, 1},
    {{0x38}, 1}, {{0x39}, 1}, {{0x3A}, 1}, {{0x3B}, 1}, {"&lt;", 4}, {{0x3D}, 1}, {"&gt;", 4}, {{0x3F}, 1},
    {{0x40}, 1}, {{0x41}, 1}, {{0x42}, 1}, {{0x43}, 1}, {{0x44}, 1}, {{0x45}, 1}, {{0x46}, 1}, {{0x47}, 1},
    {{0x48}, 1}, {{0x49}, 1}, {{0x4A}, 1}, {{0x4B}, 1}, {{0x4C}, 1}, {{0x4D}, 1}, {{0x4E}, 1}, {{0x4F}, 1},
    {{0x50}, 1}, {{0x51}, 1}, {{0x52}, 1}, {{0x53}, 1}, {{0x54}, 1}, {{0x55}, 1}, {{0x56}, 1}, {{0x57}, 1},
    {{0x58}, 1}, {{0x59}, 1}, {{0x5A}, 1}, {{0x5B}, 1}, {{0x5C}, 1}, {{0x5D}, 1}, {{0x5E}, 1}, {{0x5F}, 1},
    {{0x60}, 1}, {{0x61}, 1}, {{0x62}, 1}, {{0x63}, 1}, {{0x64}, 1}, {{0x65}, 1}, {{0x66}, 1}, {{0x67}, 1},
    {{0x68}, 1}, {{0x69}, 1}, {{0x6A}, 1}, {{0x6B}, 1}, {{0x6C}, 1}, {{0x6D}, 1}, {{0x6E}, 1}, {{0x6F}, 1},
    {{0x70}, 1}, {{0x71}, 1}, {{0x72}, 1}, {{0x73}, 1}, {{0x74}, 1}, {{0x75}, 1}, {{0x76}, 1}, {{0x77}, 1},
    {{0x78}, 1}, {{0x79}, 1}, {{0x7A}, 1}, {{0x7B}, 1}, {{0x7C}, 1}, {{0x7D}, 1}, {{0x7E}, 1}, {{0x7F}, 1},
    {{0x80}, 1}, {{0x81}, 1}, {{0x82}, 1}, {{0x83}, 1}, {{0x84}, 1}, {{0x85}, 1}, {{0x86}, 1}, {{0x87}, 1},
    {{0x88}, 1}, {{0x89}, 1}, {{0x8A}, 1}, {{0x8B}, 1}, {{0x8C}, 1}, {{0x8D}, 1}, {{0x8E}, 1}, {{0x8F}, 1},
    {{0x90}, 1}, {{0x91}, 1}, {{0x92}, 1}, {{0x93}, 1}, {{0x94}, 1}, {{0x95}, 1}, {{0x96}, 1}, {{0x97}, 1},
    {{0x98}, 1}, {{0x99}, 1}, {{0x9A}, 1}, {{0x9B}, 1}, {{0x9C}, 1}, {{0x9D}, 1}, {{0x9E}, 1}, {{0x9F}, 1},
    {{0xA0}, 1}, {{0xA1}, 1}, {{0xA2}, 1}, {{0xA3}, 1}, {{0xA4}, 1}, {{0xA5}, 1}, {{0xA6}, 1}, {{0xA7}, 1},
    {{0xA8}, 1}, {{0xA9}, 1}, {{0xAA}, 1}, {{0xAB}, 1}, {{0xAC}, 1}, {{0xAD}, 1}, {{0xAE}, 1}, {{0xAF}, 1},
    {{0xB0}, 1}, {{0xB1}, 1}, {{0xB2}, 1}, {{0xB3}, 1}, {{0xB4}, 1}, {{0xB5}, 1}, {{0xB6}, 1}, {{0xB7}, 1},
    {{0xB8}, 1}, {{0xB9}, 1}, {{0xBA}, 1}, {{0xBB}, 1}, {{0xBC}, 1}, {{0xBD}, 1}, {{0xBE}, 1}, {{0xBF}, 1},
    {{0xC0}, 1}, {{0xC1}, 1}, {{0xC2}, 1}, {{0xC3}, 1}, {{0xC4}, 1}, {{0xC5}, 1}, {{0xC6}, 1}, {{0xC7}, 1},
    {{0xC8}, 1}, {{0xC9}, 1}, {{0xCA}, 1}, {{0xCB}, 1}, {{0xCC}, 1}, {{0xCD}, 1}, {{0xCE}, 1}, {{0xCF}, 1},
    {{0xD0}, 1}, {{0xD1}, 1}, {{0xD2}, 1}, {{0xD3}, 1}, {{0xD4}, 1}, {{0xD5}, 1}, {{0xD6}, 1}, {{0xD7}, 1},
    {{0xD8}, 1}, {{0xD9}, 1}, {{0xDA}, 1}, {{0xDB}, 1}, {{0xDC}, 1}, {{0xDD}, 1}, {{0xDE}, 1}, {{0xDF}, 1},
    {{0xE0}, 1}, {{0xE1}, 1}, {{0xE2}, 1}, {{0xE3}, 1}, {{0xE4}, 1}, {{0xE5}, 1}, {{0xE6}, 1}, {{0xE7}, 1},
    {{0xE8}, 1}, {{0xE9}, 1}, {{0xEA}, 1}, {{0xEB}, 1}, {{0xEC}, 1}, {{0xED}, 1}, {{0xEE}, 1}, {{0xEF}, 1},
    {{0xF0}, 1}, {{0xF1}, 1}, {{0xF2}, 1}, {{0xF3}, 1}, {{0xF4}, 1}, {{0xF5}, 1}, {{0xF6}, 1}, {{0xF7}, 1},
    {{0xF8}, 1}, {{0xF9}, 1}, {{0xFA}, 1}, {{0xFB}, 1}, {{0xFC}, 1}, {{0xFD}, 1}, {{0xFE}, 1}, {{0xFF}, 1},
};

static Py_ssize_t
xml_escape_extra_bytes(const unsigned char *s, Py_ssize_t size)
{
    Py_ssize_t extra = 0, i = 0;
    while (size - i >= XML_BLOCK) {
        __m128i sum = _mm_setzero_si128();
        for (int n = 0; n < XML_WEIGHT_FLUSH && size - i >= XML_BLOCK; n++, i += XML_BLOCK) {
            sum = _mm_add_epi8(sum, xml_weights(xml_load(s + i)));
        }
        __m128i halves = _mm_sad_epu8(sum, _mm_setzero_si128());
        extra += _mm_cvtsi128_si32(halves) + _mm_extract_epi16(halves, 4);
    }
    for (; i < size; i++) {
        extra += xml_replacements[s[i]].length - 1;
    }
    return extra;
}

/* Special characters: '"' and '&' differ only in bit 2, '<' and '>' only in bit 1. */
static inline unsigned
xml_special_mask(__m128i v)
{
    __m128i quot_amp = bytes_equal(_mm_or_si128(v, _mm_set1_epi8(0x04)), '&');
    __m128i angles = bytes_equal(_mm_or_si128(v, _mm_set1_epi8(0x02)), '>');
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(quot_amp, angles));
}

/* Write one byte or its entity with one 8-byte store; out must have 8 bytes of room. */
static inline unsigned char *
put_escaped(unsigned char *out, unsigned char c)
{
    const xml_replacement *r = &xml_replacements[c];
    memcpy(out, r->text, 8);
    return out + r->length;
}

/* Escaping never shrinks the text: while two blocks of input remain, every 16-byte load stays
 * inside the input and every 16-byte or 8-byte store inside the output. Each block is copied
 * in runs between its special characters, all found from one mask. The last bytes go through
 * a local buffer, where the wide stores are always safe. */
static void
xml_escape_fill_bytes(const unsigned char *s, Py_ssize_t size, unsigned char *out)
{
    Py_ssize_t i = 0;
    for (; size - i >= 2 * XML_BLOCK; i += XML_BLOCK) {
        unsigned mask = xml_special_mask(xml_load(s + i)), done = 0;
        while (mask != 0) {
            unsigned at = (unsigned)__builtin_ctz(mask);
            _mm_storeu_si128((__m128i *)out, xml_load(s + i + done));
            out = put_escaped(out + (at - done), s[i + at]);
            done = at + 1;
            mask &= mask - 1;
        }
        _mm_storeu_si128((__m128i *)out, xml_load(s + i + done));
        out += XML_BLOCK - done;
    }
    unsigned char tail[2 * XML_BLOCK * 6 + 8], *end = tail;
    for (; i < size; i++) {
        end = put_escaped(end, s[i]);
    }
    memcpy(out, tail, (size_t)(end - tail));
}

static inline unsigned
amp_mask(const unsigned char *p)
{
    return (unsigned)_mm_movemask_epi8(bytes_equal(xml_load(p), '&'));
}

/* Eight bytes at p as a number, for comparing short strings in one step. */
static inline uint64_t
load8(const void *p)
{
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

/* Length of the entity at p (4, 5 or 6), or 0; p must have 8 readable bytes. Compares whole
 * words instead of branching per character: which entity comes next is not predictable. The
 * masks keep the first 4, 5 or 6 bytes whatever the byte order. */
static inline Py_ssize_t
entity_length_wide(const unsigned char *p)
{
    uint64_t w = load8(p);
    uint64_t w4 = w & load8("\xff\xff\xff\xff\0\0\0\0");
    uint64_t w5 = w & load8("\xff\xff\xff\xff\xff\0\0\0");
    uint64_t w6 = w & load8("\xff\xff\xff\xff\xff\xff\0\0");
    Py_ssize_t n = (w4 == load8("&lt;\0\0\0\0")) | (w4 == load8("&gt;\0\0\0\0")) ? 4 : 0;
    n = w5 == load8("&amp;\0\0\0") ? 5 : n;
    return w6 == load8("&quot;\0\0") ? 6 : n;
}

/* No entity holds a second '&', so every '&' of a block is looked at on its own and no bit
 * of the mask ever depends on the length of an earlier entity: the loop does not stall on it.
 * A block needs 8 readable bytes past its end for entity_length_wide. */
static Py_ssize_t
xml_unescape_saved_bytes(const unsigned char *s, Py_ssize_t size)
{
    Py_ssize_t saved = 0, i = 0;
    for (; size - i >= XML_BLOCK + 8; i += XML_BLOCK) {
        for (unsigned mask = amp_mask(s + i); mask != 0; mask &= mask - 1) {
            Py_ssize_t n = entity_length_wide(s + i + __builtin_ctz(mask));
            saved += n > 0 ? n - 1 : 0;
        }
    }
    return saved + xml_unescape_saved_Py_UCS1(s + i, size - i);
}

/* The character an entity of the given length at s stands for ('&' when there is none). */
static inline unsigned char
unescaped(const unsigned char *s, Py_ssize_t n)
{
    return n == 6 ? '"' : n == 4 ? (s[1] == 'l' ? '<' : '>') : '&';
}

/* Unescaping shrinks the text, so the output bound is checked apart from the input bound: a
 * block needs two blocks of input (16-byte loads) and two of output (16-byte stores) left.
 * The '&' of a block come from one mask; an entity may end in the next block, which then
 * starts after it (it holds no '&' that could be missed). */
static void
xml_unescape_fill_bytes(const unsigned char *s, Py_ssize_t size, unsigned char *out,
                        const unsigned char *out_end)
{
    Py_ssize_t i = 0;
    while (size - i >= 2 * XML_BLOCK && out_end - out >= 2 * XML_BLOCK) {
        unsigned done = 0;
        for (unsigned mask = amp_mask(s + i); mask != 0; mask &= mask - 1) {
            unsigned at = (unsigned)__builtin_ctz(mask);
            _mm_storeu_si128((__m128i *)out, xml_load(s + i + done));
            out += at - done;
            Py_ssize_t n = entity_length_wide(s + i + at);
            *out++ = unescaped(s + i + at, n);
            done = at + (n > 0 ? (unsigned)n : 1);
        }
        if (done < XML_BLOCK) {
            _mm_storeu_si128((__m128i *)out, xml_load(s + i + done));
            out += XML_BLOCK - done;
            done = XML_BLOCK;
        }
        i += done;
    }
    xml_unescape_fill_Py_UCS1(s + i, size - i, out);
}

#else /* no SSE2: the template functions do all of it */

static Py_ssize_t
xml_escape_extra_bytes(const unsigned char *s, Py_ssize_t size)
{
    return xml_escape_extra_Py_UCS1(s, size);
}

static void
xml_escape_fill_bytes(const unsigned char *s, Py_ssize_t size, unsigned char *out)
{
    xml_escape_fill_Py_UCS1(s, size, out);
}

static Py_ssize_t
xml_unescape_saved_bytes(const unsigned char *s, Py_ssize_t size)
{
    return xml_unescape_saved_Py_UCS1(s, size);
}

static void
xml_unescape_fill_bytes(const unsigned char *s, Py_ssize_t size, unsigned char *out,
                        const unsigned char *out_end)
{
    (void)out_end;
    xml_unescape_fill_Py_UCS1(s, size, out);
}
#endif

typedef enum { XML_ESCAPE, XML_UNESCAPE } xml_direction;

/* Change in length (positive for escape, negative for unescape) for one kind of text. */
static Py_ssize_t
xml_delta(xml_direction direction, int kind, const void *data, Py_ssize_t size)
{
    switch (kind) {
    case PyUnicode_1BYTE_KIND:
        return direction == XML_ESCAPE ? xml_escape_extra_bytes(data, size)
                                       : -xml_unescape_saved_bytes(data, size);
    case PyUnicode_2BYTE_KIND:
        return direction == XML_ESCAPE ? xml_escape_extra_Py_UCS2(data, size)
                                       : -xml_unescape_saved_Py_UCS2(data, size);
    default:
        return direction == XML_ESCAPE ? xml_escape_extra_Py_UCS4(data, size)
                                       : -xml_unescape_saved_Py_UCS4(data, size);
    }
}

/* Write the transformed text into out, which holds exactly out_size code units. */
static void
xml_fill(xml_direction direction, int kind, const void *data, Py_ssize_t size, void *out,
         Py_ssize_t out_size)
{
    switch (kind) {
    case PyUnicode_1BYTE_KIND:
        if (direction == XML_ESCAPE) {
            xml_escape_fill_bytes(data, size, out);
        }
        else {
            xml_unescape_fill_bytes(data, size, out, (unsigned char *)out + out_size);
        }
        break;
    case PyUnicode_2BYTE_KIND:
        (direction == XML_ESCAPE ? xml_escape_fill_Py_UCS2 : xml_unescape_fill_Py_UCS2)(
            data, size, out);
        break;
    default:
        (direction == XML_ESCAPE ? xml_escape_fill_Py_UCS4 : xml_unescape_fill_Py_UCS4)(
            data, size, out);
        break;
    }
}

static PyObject *
xml_transform(PyObject *s, xml_direction direction, const char *type_message)
{
    int kind = PyUnicode_1BYTE_KIND;
    const void *data;
    Py_ssize_t size;
    if (PyBytes_Check(s)) {
        data = PyBytes_AS_STRING(s);
        size = PyBytes_GET_SIZE(s);
    }
    else if (PyUnicode_Check(s)) {
        if (str_is_ascii(s) < 0) {
            return NULL;
        }
        kind = PyUnicode_KIND(s);
        data = PyUnicode_DATA(s);
        size = PyUnicode_GET_LENGTH(s);
    }
    else {
        PyErr_SetString(PyExc_TypeError, type_message);
        return NULL;
    }
    Py_ssize_t delta = xml_delta(direction, kind, data, size);
    if (delta == 0) {
        return Py_NewRef(s);
    }
    if (delta > PY_SSIZE_T_MAX - size) {
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_Check(s)
                        ? PyBytes_FromStringAndSize(NULL, size + delta)
                        : PyUnicode_New(size + delta, PyUnicode_MAX_CHAR_VALUE(s));
    if (out != NULL) {
        xml_fill(direction, kind, data, size,
                 PyBytes_Check(out) ? (void *)PyBytes_AS_STRING(out) : PyUnicode_DATA(out),
                 size + delta);
    }
    return out;
}

static PyObject *
codec_xml_escape(PyObject *module, PyObject *s)
{
    return xml_transform(s, XML_ESCAPE, "first argument must be a string");
}

static PyObject *
codec_xml_unescape(PyObject *module, PyObject *s)
{
    return xml_transform(s, XML_UNESCAPE, "first argument must be a str or unicode");
}

/* ------------------------------------------------------------------------------------------ */
/* Module.                                                                                     */

#define FASTCALL_KW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef codec_methods[] = {
    {"decode_params", FASTCALL_KW(codec_decode_params),
     PyDoc_STR("decode_params(data)\n--\n\nDecode a FastCGI name-value pair stream.")},
    {"encode_params", FASTCALL_KW(codec_encode_params),
     PyDoc_STR("encode_params(pairs)\n--\n\nEncode (name, value) pairs as FastCGI name-value "
               "pairs.")},
    {"params_text", FASTCALL_KW(codec_params_text),
     PyDoc_STR("params_text(pairs)\n--\n\nThe (name, value) pairs as a dict of str: UTF-8, "
               "undecodable bytes as surrogates, later duplicates win.")},
    {"params_latin1", FASTCALL_KW(codec_params_latin1),
     PyDoc_STR("params_latin1(pairs)\n--\n\nThe (name, value) pairs as a dict of latin-1 str "
               "(one character per byte), later duplicates win.")},
    {"parse_record_header", FASTCALL_KW(codec_parse_record_header),
     PyDoc_STR("parse_record_header(data, offset=0)\n--\n\nReturn (version, type, request_id, "
               "content_length, padding_length) of the record header at offset.")},
    {"split_records", FASTCALL_KW(codec_split_records),
     PyDoc_STR("split_records(data, offset=0, view_from=0)\n--\n\nSlice the whole records out "
               "of data: ([(type, request_id, content), ...], end).")},
    {"read_request_head", FASTCALL_KW(codec_read_request_head),
     PyDoc_STR("read_request_head(data, max_params_bytes, max_params_count)\n--\n\nThe "
               "opening of a responder request when data is exactly that: (request_id, flags, "
               "params, input_done), else None.")},
    {"frame_records", FASTCALL_KW(codec_frame_records),
     PyDoc_STR("frame_records(record_type, request_id, data)\n--\n\nFrame data as padded "
               "records of at most 65535 bytes.")},
    {"frame_end", FASTCALL_KW(codec_frame_end),
     PyDoc_STR("frame_end(request_id, data=b'', app_status=0, protocol_status=0, "
               "stderr_sent=False)\n--\n\nFinal STDOUT, the empty stream records and "
               "END_REQUEST in one buffer.")},
    {"pack", FASTCALL_KW(codec_pack),
     PyDoc_STR("pack(data, nbits=5)\n--\n\nPack bytes into printable ASCII, nbits per "
               "character.")},
    {"uid", FASTCALL_KW(codec_uid),
     PyDoc_STR("uid(nbits=5, node=None)\n--\n\nReturn a new unique id.")},
    {"_sha1", codec_sha1, METH_O, PyDoc_STR("_sha1(data, /)\n--\n\nSHA-1 digest of data.")},
    {"url_encode", codec_url_encode, METH_O,
     PyDoc_STR("url_encode(s, /)\n--\n\nPercent-encode a URL component.")},
    {"url_escape", codec_url_escape, METH_O,
     PyDoc_STR("url_escape(s, /)\n--\n\nPercent-encode what may not appear in a URL.")},
    {"url_decode", codec_url_decode, METH_O,
     PyDoc_STR("url_decode(s, /)\n--\n\nDecode %XX escapes.")},
    {"url_unescape", codec_url_decode, METH_O,
     PyDoc_STR("url_unescape(s, /)\n--\n\nDecode %XX escapes.")},
    {"decompose_query", FASTCALL_KW(codec_decompose_query),
     PyDoc_STR("decompose_query(s, charset='utf-8', tolerant=True, separator='&')\n--\n\n"
               "Parse a query string or Cookie header into a dict.")},
    {"xml_escape", codec_xml_escape, METH_O,
     PyDoc_STR("xml_escape(s, /)\n--\n\nReplace & < > \" by their entities.")},
    {"xml_unescape", codec_xml_unescape, METH_O,
     PyDoc_STR("xml_unescape(s, /)\n--\n\nReplace &amp; &lt; &gt; &quot; by their "
               "characters.")},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot codec_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef codec_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "smisk._codec",
    .m_doc = "C twin of smisk._codec_py: identical results, faster.",
    .m_size = 0,
    .m_methods = codec_methods,
    .m_slots = codec_slots,
};

PyMODINIT_FUNC
PyInit__codec(void)
{
    return PyModuleDef_Init(&codec_module);
}
