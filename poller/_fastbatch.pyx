# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython batch builder: renders Kinesis records as Lambda event JSON bytes and writes invoke
payloads straight into one exact-size ``bytes`` object. ``poller.batching`` holds the
pure-Python twin; both produce byte-identical output."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.conversion cimport PyOS_double_to_string
from cpython.mem cimport PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.math cimport isfinite
from libc.string cimport memcpy, strlen

import json
from json.encoder import encode_basestring_ascii as _json_str

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    bint PyUnicode_IS_READY(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    double PyFloat_AS_DOUBLE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    PyObject* PyTuple_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyList_GET_SIZE(object o)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    int Py_DTSF_ADD_DOT_0
    object PyLong_FromUnicodeObject(object u, int base)

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    /* 1 when every byte is printable ASCII other than '"' and '\\\\', i.e. json.dumps
       (ensure_ascii=True) writes the string unchanged between its quotes. Branch-free so the
       compiler vectorises it; the caller guarantees the bytes are ASCII. */
    static int poller_json_plain(const unsigned char *p, Py_ssize_t n) {
        unsigned char bad = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char c = p[i];
            bad |= (unsigned char)((unsigned char)(c - 0x20) >= 0x5f)
                 | (unsigned char)(c == 0x22) | (unsigned char)(c == 0x5c);
        }
        return !bad;
    }

    /* repr(x) for the common Kinesis timestamp (1 <= x < 2**40 with at most three decimals),
       written to buf; 0 when x is not such a number. Below 2**40 a double's spacing is under
       0.001, so when m/1000 rounds to x no other decimal of three or fewer places does, and
       m/1000 without trailing zeros is the shortest round-trip string repr() prints. */
    static Py_ssize_t poller_ms_repr(double x, char *buf) {
        if (!(x >= 1.0 && x < 1099511627776.0)) return 0;
        long long m = llround(x * 1000.0);
        if ((double)m / 1000.0 != x) return 0;
        long long whole = m / 1000;
        int frac = (int)(m % 1000);
        char tmp[20];
        Py_ssize_t n = 0, k = 0;
        while (whole >= 100) {
            int two = (int)(whole % 100);
            whole /= 100;
            tmp[k++] = (char)('0' + two % 10);
            tmp[k++] = (char)('0' + two / 10);
        }
        do { tmp[k++] = (char)('0' + whole % 10); whole /= 10; } while (whole);
        while (k) buf[n++] = tmp[--k];
        buf[n++] = '.';
        if (frac == 0) { buf[n++] = '0'; return n; }
        buf[n++] = (char)('0' + frac / 100);
        if (frac % 100) {
            buf[n++] = (char)('0' + frac / 10 % 10);
            if (frac % 10) buf[n++] = (char)('0' + frac % 10);
        }
        return n;
    }

    /* int(s), parsed directly when s (ASCII, data p, length n) is 1..76 plain digits. */
    static PyObject *poller_seq_to_long(PyObject *s, const char *p, Py_ssize_t n) {
        unsigned char bad = 0, le[32];
        Py_ssize_t used = 0, i = 0, j;
        if (n < 1 || n > 76) return PyLong_FromUnicodeObject(s, 10);
        for (j = 0; j < n; j++) bad |= (unsigned char)((unsigned char)(p[j] - '0') > 9);
        if (bad) return PyLong_FromUnicodeObject(s, 10);
        if (n <= 19) {
            unsigned long long v = 0;
            for (j = 0; j < n; j++) v = v * 10 + (unsigned long long)(p[j] - '0');
            return PyLong_FromUnsignedLongLong(v);
        }
    #ifdef __SIZEOF_INT128__
        static const uint64_t pow10[19] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
            1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
            100000000000ULL, 1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
            1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
            1000000000000000000ULL};
        uint64_t limbs[4];
        while (i < n) {
            Py_ssize_t chunk = (i == 0 && n % 18) ? n % 18 : 18;
            Py_ssize_t half = chunk - chunk / 2;
            uint64_t hi = 0, lo = 0, carry;
            /* two independent digit chains, so the CPU can overlap them */
            for (j = 0; j < chunk / 2; j++) {
                hi = hi * 10 + (uint64_t)(p[i + j] - '0');
                lo = lo * 10 + (uint64_t)(p[i + chunk / 2 + j] - '0');
            }
            if (half != chunk / 2) lo = lo * 10 + (uint64_t)(p[i + chunk - 1] - '0');
            carry = hi * pow10[half] + lo;
            i += chunk;
            for (j = 0; j < used; j++) {
                unsigned __int128 t = (unsigned __int128)limbs[j] * pow10[chunk] + carry;
                limbs[j] = (uint64_t)t;
                carry = (uint64_t)(t >> 64);
            }
            if (carry) limbs[used++] = carry;
        }
    #if PY_LITTLE_ENDIAN
        memcpy(le, limbs, (size_t)(8 * used));
    #else
        for (j = 0; j < 8 * used; j++) le[j] = (unsigned char)(limbs[j / 8] >> (8 * (j % 8)));
    #endif
        used *= 8;
    #else
        static const uint32_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000,
                                           10000000, 100000000, 1000000000};
        uint32_t limbs[8];
        while (i < n) {
            Py_ssize_t chunk = (i == 0 && n % 9) ? n % 9 : 9;
            uint64_t carry = 0;
            for (j = 0; j < chunk; j++) carry = carry * 10 + (uint64_t)(p[i + j] - '0');
            i += chunk;
            for (j = 0; j < used; j++) {
                uint64_t t = (uint64_t)limbs[j] * pow10[chunk] + carry;
                limbs[j] = (uint32_t)t;
                carry = t >> 32;
            }
            if (carry) limbs[used++] = (uint32_t)carry;
        }
        for (j = 0; j < 4 * used; j++) le[j] = (unsigned char)(limbs[j / 4] >> (8 * (j % 4)));
        used *= 4;
    #endif
    #if PY_VERSION_HEX >= 0x030D0000
        return PyLong_FromUnsignedNativeBytes(le, (size_t)used, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
    #else
        return _PyLong_FromByteArray(le, (size_t)used, 1, 0);
    #endif
    }
    """
    bint poller_json_plain(const unsigned char *p, Py_ssize_t n) nogil
    Py_ssize_t poller_ms_repr(double x, char *buf) nogil
    object poller_seq_to_long(object s, const char *p, Py_ssize_t n)


MAX_PAYLOAD_BYTES = 6291456
ENVELOPE_BYTES = 14  # len(b'{"Records":[]}')

cdef Py_ssize_t _ENVELOPE = 14
cdef bytes _HEAD = b'{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"'
cdef bytes _SEQ = b'","sequenceNumber":"'
cdef bytes _DATA = b'","data":"'
cdef bytes _ARRIVAL = b'","approximateArrivalTimestamp":'


@cython.no_gc
@cython.final
cdef class Record:
    """One source record, already rendered as its event JSON object (``fragment``)."""

    cdef public object position
    cdef public str seq
    cdef public str key
    cdef public double arrival
    cdef public bytes fragment
    cdef public bint done

    def __init__(self, object position, str seq, str key, double arrival, bytes fragment):
        self.position = position
        self.seq = seq
        self.key = key
        self.arrival = arrival
        self.fragment = fragment
        self.done = False

    def __repr__(self):
        return (f"Record(position={self.position!r}, key={self.key!r}, "
                f"arrival={self.arrival!r}, size={len(self.fragment)}, done={self.done!r})")


cdef inline char* _put(char* out, bytes piece) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(piece)
    memcpy(out, PyBytes_AS_STRING(piece), n)
    return out + n


cdef inline str _inner(str s):
    """``s`` as json.dumps writes it, without the surrounding quotes; ``s`` itself when plain."""
    if PyUnicode_IS_ASCII(s) and poller_json_plain(
            <const unsigned char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s)):
        return s
    cdef str quoted = _json_str(s)
    return quoted[1:PyUnicode_GET_LENGTH(quoted) - 1]


cdef inline object _field(object item, object name):
    cdef PyObject* value
    if PyDict_CheckExact(item):
        value = PyDict_GetItemWithError(item, name)
        if value == NULL:
            raise KeyError(name)
        return <object>value
    return item[name]


cdef inline char* _put_ascii(char* out, str s) noexcept:
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    memcpy(out, PyUnicode_DATA(s), n)
    return out + n


@cython.final
cdef class KinesisEncoder:
    """Renders Kinesis GetRecords records (the API's JSON, ``Data`` still base64) as Lambda
    Kinesis event records, in AWS's field order."""

    cdef bytes _event_id
    cdef bytes _tail
    cdef Py_ssize_t _fixed

    def __init__(self, str shard_id, str region, str stream_arn, str invoke_identity_arn):
        # eventID is '"<shardId>:<seq>"': the escaped shard id without its closing quote here,
        # the escaped sequence number and its closing quote per record.
        cdef str shard = _json_str(shard_id + ":")
        self._event_id = ('},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":'
                          + shard[:PyUnicode_GET_LENGTH(shard) - 1]).encode("ascii")
        self._tail = ('","eventName":"aws:kinesis:record","invokeIdentityArn":'
                      + _json_str(invoke_identity_arn) + ',"awsRegion":' + _json_str(region)
                      + ',"eventSourceARN":' + _json_str(stream_arn) + "}").encode("ascii")
        self._fixed = (len(_HEAD) + len(_SEQ) + len(_DATA) + len(_ARRIVAL)
                       + len(self._event_id) + len(self._tail))

    def encode(self, raw):
        cdef list out = []
        cdef object item
        cdef object k_seq = "SequenceNumber", k_key = "PartitionKey", k_data = "Data"
        cdef object k_ts = "ApproximateArrivalTimestamp"
        for item in raw:
            if PyDict_CheckExact(item):
                # json.loads shares one str object per key across a document: looking fields
                # up with those very objects skips the string comparisons.
                for k in <dict>item:
                    if k == k_seq:
                        k_seq = k
                    elif k == k_key:
                        k_key = k
                    elif k == k_data:
                        k_data = k
                    elif k == k_ts:
                        k_ts = k
            break
        for item in raw:
            out.append(self._record(item, k_seq, k_key, k_data, k_ts))
        return out

    cdef Record _record(self, object item, object k_seq, object k_key, object k_data,
                        object k_ts):
        cdef str seq = _field(item, k_seq)
        cdef str key = _field(item, k_key)
        cdef str data = _field(item, k_data)
        cdef object ts = _field(item, k_ts)
        cdef str seq_in = _inner(seq)
        cdef str key_in = _inner(key)
        cdef str data_in = _inner(data)
        cdef char[32] num
        cdef char* ext
        cdef bytes num_obj = None
        cdef Py_ssize_t num_len = 0
        cdef double arrival
        cdef bytes fragment
        cdef char* out
        cdef Record rec

        if PyFloat_CheckExact(ts) and isfinite(PyFloat_AS_DOUBLE(ts)):
            arrival = PyFloat_AS_DOUBLE(ts)
            num_len = poller_ms_repr(arrival, num)
            if num_len == 0:
                ext = PyOS_double_to_string(arrival, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
                num_len = <Py_ssize_t>strlen(ext)
                memcpy(num, ext, num_len)
                PyMem_Free(ext)
        else:
            if PyLong_CheckExact(ts):
                num_obj = repr(ts).encode("ascii")
            else:
                num_obj = json.dumps(ts).encode("ascii")
            arrival = float(ts)
        if num_obj is not None:
            num_len = PyBytes_GET_SIZE(num_obj)

        fragment = PyBytes_FromStringAndSize(
            NULL, self._fixed + 2 * PyUnicode_GET_LENGTH(seq_in) + PyUnicode_GET_LENGTH(key_in)
            + PyUnicode_GET_LENGTH(data_in) + num_len)
        out = PyBytes_AS_STRING(fragment)
        out = _put(out, _HEAD)
        out = _put_ascii(out, key_in)
        out = _put(out, _SEQ)
        out = _put_ascii(out, seq_in)
        out = _put(out, _DATA)
        out = _put_ascii(out, data_in)
        out = _put(out, _ARRIVAL)
        if num_obj is None:
            memcpy(out, num, num_len)
            out += num_len
        else:
            out = _put(out, num_obj)
        out = _put(out, self._event_id)
        out = _put_ascii(out, seq_in)
        _put(out, self._tail)

        rec = Record.__new__(Record)
        rec.position = poller_seq_to_long(seq, <const char*>PyUnicode_DATA(seq_in),
                                          PyUnicode_GET_LENGTH(seq_in))
        rec.seq = seq
        rec.key = key
        rec.arrival = arrival
        rec.fragment = fragment
        rec.done = False
        return rec


cdef inline int _bounds(Py_ssize_t n, Py_ssize_t start, object end,
                        Py_ssize_t* lo, Py_ssize_t* hi) except -1:
    cdef Py_ssize_t a = start
    cdef Py_ssize_t b = n if end is None else <Py_ssize_t>end
    if a < 0:
        a += n
        if a < 0:
            a = 0
    elif a > n:
        a = n
    if b < 0:
        b += n
        if b < 0:
            b = 0
    elif b > n:
        b = n
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b
    return 0


cdef inline list _as_list(object records):
    if PyList_CheckExact(records):
        return <list>records
    return list(records)


def payload_size(records, Py_ssize_t start=0, end=None, Py_ssize_t tail_bytes=0):
    cdef list recs = _as_list(records)
    cdef Py_ssize_t lo = 0, hi = 0, i
    _bounds(PyList_GET_SIZE(recs), start, end, &lo, &hi)
    cdef Py_ssize_t total = _ENVELOPE + tail_bytes + (hi - lo - 1 if hi > lo else 0)
    for i in range(lo, hi):
        total += PyBytes_GET_SIZE((<Record?>PyList_GET_ITEM(recs, i)).fragment)
    return total


def build_payload(records, Py_ssize_t start=0, end=None, bytes tail=b""):
    cdef list recs = _as_list(records)
    cdef Py_ssize_t lo = 0, hi = 0, i
    cdef Record rec
    _bounds(PyList_GET_SIZE(recs), start, end, &lo, &hi)
    cdef Py_ssize_t total = _ENVELOPE + PyBytes_GET_SIZE(tail) + (hi - lo - 1 if hi > lo else 0)
    for i in range(lo, hi):
        total += PyBytes_GET_SIZE((<Record?>PyList_GET_ITEM(recs, i)).fragment)
    cdef bytes payload = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(payload)
    memcpy(out, b'{"Records":[', 12)
    out += 12
    for i in range(lo, hi):
        if i > lo:
            out[0] = b','
            out += 1
        rec = <Record>PyList_GET_ITEM(recs, i)
        out = _put(out, rec.fragment)
    out[0] = b']'
    out += 1
    out = _put(out, tail)
    out[0] = b'}'
    return payload


def take_batch(buffer, Py_ssize_t max_count, Py_ssize_t max_bytes, Py_ssize_t tail_bytes=0):
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count}")
    cdef list batch = []
    if not buffer:
        return batch
    popleft = buffer.popleft
    cdef Record rec = <Record?>popleft()
    batch.append(rec)
    cdef Py_ssize_t count = 1
    cdef Py_ssize_t size = _ENVELOPE + tail_bytes + PyBytes_GET_SIZE(rec.fragment)
    cdef Py_ssize_t grown
    while count < max_count and buffer:
        rec = <Record?>buffer[0]
        grown = size + 1 + PyBytes_GET_SIZE(rec.fragment)
        if grown > max_bytes:
            break
        size = grown
        batch.append(popleft())
        count += 1
    return batch
