# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython batch builder: renders Kinesis records as Lambda event JSON bytes and writes invoke
payloads straight into one exact-size ``bytes`` object. ``poller.batching`` holds the
pure-Python twin; both produce byte-identical output."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.math cimport isfinite
from libc.string cimport memcpy

import json
from binascii import b2a_base64
from json.encoder import encode_basestring_ascii as _json_str

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    bint PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)
    double PyFloat_AS_DOUBLE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    object PyLong_FromUnicodeObject(object u, int base)
    Py_ssize_t PyList_GET_SIZE(object o)

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

    /* 1 when p[0:n] is 1..76 ASCII digits: int() of it fits poller_digits_to_long. */
    static int poller_digits(const char *p, Py_ssize_t n) {
        unsigned char bad = 0;
        if (n < 1 || n > 76) return 0;
        for (Py_ssize_t j = 0; j < n; j++) bad |= (unsigned char)((unsigned char)(p[j] - '0') > 9);
        return !bad;
    }

    /* The value of 8 ASCII digits. On little-endian hosts one 64-bit load: subtracting '0'
       leaves digit i in byte i; v*10 + (v>>8) puts the two-digit pair (i, i+1) in byte i;
       the two masked multiplications then sum pair0*10^6 + pair1*10^4 + pair2*100 + pair3
       in the upper 32 bits (no partial sum reaches 2^32, so nothing carries across). */
    static inline uint64_t poller_eight_digits(const char *p) {
    #if PY_LITTLE_ENDIAN
        uint64_t v;
        memcpy(&v, p, 8);
        v -= 0x3030303030303030ULL;
        v = v * 10 + (v >> 8);
        return ((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))
                + ((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32))) >> 32;
    #else
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v = v * 10 + (uint64_t)(p[j] - '0');
        return v;
    #endif
    }

    /* int() of 1..76 ASCII digits (checked by poller_digits). */
    static PyObject *poller_digits_to_long(const char *p, Py_ssize_t n) {
        static const uint64_t pow10[20] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
            1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
            100000000000ULL, 1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
            1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
            1000000000000000000ULL, 10000000000000000000ULL};
        unsigned char le[40];
        Py_ssize_t used = 0, i = 0, j;
        if (n <= 19) {
            unsigned long long v = 0;
            for (j = 0; j < n; j++) v = v * 10 + (unsigned long long)(p[j] - '0');
            return PyLong_FromUnsignedLongLong(v);
        }
    #ifdef __SIZEOF_INT128__
        /* base 2^64 limbs, least significant first; 16 digits (< 2^54) enter at a time */
        uint64_t limbs[5];
        while (i < n) {
            Py_ssize_t chunk = (i == 0 && n % 16) ? n % 16 : 16;
            uint64_t carry = 0;
            if (chunk == 16) {
                carry = poller_eight_digits(p + i) * 100000000ULL + poller_eight_digits(p + i + 8);
            } else {
                for (j = 0; j < chunk; j++) carry = carry * 10 + (uint64_t)(p[i + j] - '0');
            }
            i += chunk;
            for (j = 0; j < used; j++) {
                unsigned __int128 t = (unsigned __int128)limbs[j] * pow10[chunk] + carry;
                limbs[j] = (uint64_t)t;
                carry = (uint64_t)(t >> 64);
            }
            if (carry) limbs[used++] = carry;
        }
        for (j = 0; j < 8 * used; j++) le[j] = (unsigned char)(limbs[j / 8] >> (8 * (j % 8)));
        used *= 8;
    #else
        /* base 2^32 limbs, 9 digits at a time */
        uint32_t limbs[10];
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
    bint poller_digits(const char *p, Py_ssize_t n) nogil
    object poller_digits_to_long(const char *p, Py_ssize_t n)


MAX_PAYLOAD_BYTES = 6291456
ENVELOPE_BYTES = 14  # len(b'{"Records":[]}')

cdef Py_ssize_t _ENVELOPE = 14
cdef bytes _HEAD = b'{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"'
cdef bytes _SEQ = b'","sequenceNumber":"'
cdef bytes _DATA = b'","data":"'
cdef bytes _ARRIVAL = b'","approximateArrivalTimestamp":'


@cython.no_gc
@cython.final
@cython.no_gc  # its fields (int, str, float, bytes, bool) cannot form reference cycles
cdef class Record:
    """One source record, already rendered as its event JSON object (``fragment``); its
    fields are declared in ``_fastbatch.pxd``."""

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
    if s is None:
        raise TypeError("expected str, got None")
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
        cdef PyObject* f_seq = NULL
        cdef PyObject* f_key = NULL
        cdef PyObject* f_data = NULL
        cdef PyObject* f_ts = NULL
        cdef PyObject* k
        cdef PyObject* v
        cdef Py_ssize_t pos = 0
        if PyDict_CheckExact(item):
            # One pass over the few entries, matching the shared key objects by identity.
            while PyDict_Next(item, &pos, &k, &v):
                if k == <PyObject*>k_seq:
                    f_seq = v
                elif k == <PyObject*>k_key:
                    f_key = v
                elif k == <PyObject*>k_data:
                    f_data = v
                elif k == <PyObject*>k_ts:
                    f_ts = v
        cdef str seq, key, data
        cdef object ts
        if f_seq != NULL and f_key != NULL and f_data != NULL and f_ts != NULL:
            seq, key, data, ts = <object>f_seq, <object>f_key, <object>f_data, <object>f_ts
        else:
            seq, key = _field(item, k_seq), _field(item, k_key)
            data, ts = _field(item, k_data), _field(item, k_ts)
        cdef str seq_in
        cdef object position
        if (seq is not None and PyUnicode_IS_ASCII(seq)
                and poller_digits(<const char*>PyUnicode_DATA(seq), PyUnicode_GET_LENGTH(seq))):
            seq_in = seq
            position = poller_digits_to_long(<const char*>PyUnicode_DATA(seq),
                                             PyUnicode_GET_LENGTH(seq))
        else:
            seq_in = _inner(seq)
            position = PyLong_FromUnicodeObject(seq, 10)
        cdef str key_in = _inner(key)
        cdef str data_in = _inner(data)
        cdef char[24] num
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
                num_obj = repr(ts).encode("ascii")
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
        rec.position = position
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


cdef inline Py_ssize_t _size(object record) except -1:
    cdef bytes fragment = (<Record?>record).fragment
    if fragment is None:
        raise TypeError("Record.fragment is None")
    return PyBytes_GET_SIZE(fragment)


cdef list _span(object records, Py_ssize_t start, object end):
    """A new list of records[start:end] (slice rules): it holds the records while we write."""
    cdef list recs = <list>records if PyList_CheckExact(records) else list(records)
    cdef Py_ssize_t lo = 0, hi = 0
    _bounds(PyList_GET_SIZE(recs), start, end, &lo, &hi)
    return recs[lo:hi]


def payload_size(records, Py_ssize_t start=0, end=None, Py_ssize_t tail_bytes=0):
    cdef list recs = _span(records, start, end)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs), i
    cdef Py_ssize_t total = _ENVELOPE + tail_bytes + (n - 1 if n else 0)
    for i in range(n):
        total += _size(<object>PyList_GET_ITEM(recs, i))
    return total


cdef char* _join_fragments(char* out, list recs, char* last) except NULL:
    """Writes the records' fragments joined by commas from ``out``; they must end at ``last``."""
    cdef Py_ssize_t i, size, n = PyList_GET_SIZE(recs)
    cdef bytes fragment
    for i in range(n):
        fragment = (<Record>PyList_GET_ITEM(recs, i)).fragment
        size = PyBytes_GET_SIZE(fragment) if fragment is not None else -1
        if size < 0 or out + size + (i > 0) > last:
            raise RuntimeError("a record's fragment changed while its payload was built")
        if i > 0:
            out[0] = b','
            out += 1
        memcpy(out, PyBytes_AS_STRING(fragment), size)
        out += size
    if out != last:
        raise RuntimeError("a record's fragment changed while its payload was built")
    return out


def build_payload(records, Py_ssize_t start=0, end=None, bytes tail not None=b""):
    cdef list recs = _span(records, start, end)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs), i, size
    cdef Py_ssize_t total = _ENVELOPE + PyBytes_GET_SIZE(tail) + (n - 1 if n else 0)
    for i in range(n):
        total += _size(<object>PyList_GET_ITEM(recs, i))
    cdef bytes payload = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(payload)
    cdef char* last = out + total - 2 - PyBytes_GET_SIZE(tail)  # where ']' goes
    memcpy(out, b'{"Records":[', 12)
    out = _join_fragments(out + 12, recs, last)
    out[0] = b']'
    out = _put(out + 1, tail)
    out[0] = b'}'
    return payload


def take_batch(buffer, Py_ssize_t max_count, Py_ssize_t max_bytes, Py_ssize_t tail_bytes=0):
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count}")
    cdef list batch = []
    if not buffer:
        return batch
    popleft = buffer.popleft
    cdef Py_ssize_t size = _ENVELOPE + tail_bytes + _size(buffer[0])
    batch.append(popleft())
    cdef Py_ssize_t count = 1
    cdef Py_ssize_t grown
    while count < max_count and buffer:
        grown = size + 1 + _size(buffer[0])
        if grown > max_bytes:
            break
        size = grown
        batch.append(popleft())
        count += 1
    return batch


cdef list _BYTE_TEXT = [str(i).encode("ascii") for i in range(256)]
cdef dict _TIMESTAMP_TYPES = {0: b'"CREATE_TIME"', 1: b'"LOG_APPEND_TIME"'}


cdef bytes _byte_array(object value):
    if value is None:
        return b"null"
    cdef const unsigned char[:] view = value
    cdef Py_ssize_t i, n = view.shape[0]
    cdef list parts = [None] * n
    for i in range(n):
        parts[i] = _BYTE_TEXT[view[i]]
    return b"[" + b",".join(parts) + b"]"


@cython.final
cdef class KafkaEncoder:
    """Renders Kafka consumer records (objects with ``topic``, ``partition``, ``offset``,
    ``timestamp`` (ms), ``timestamp_type``, ``key``, ``value`` and ``headers``, as aiokafka's
    ConsumerRecord has) as the record objects of a Lambda Kafka event, in AWS's field order."""

    cdef bytes _head

    def __init__(self, str topic, object partition):
        self._head = ('{"topic":' + _json_str(topic) + ',"partition":'
                      + str(int(partition))).encode("ascii")

    def encode(self, raw):
        cdef list out = []
        cdef list parts
        cdef object item, key, value, headers, name, data
        cdef object offset
        cdef long long timestamp
        cdef bytes key_b64
        cdef bint first
        cdef Record rec
        for item in raw:
            offset = int(item.offset)
            timestamp = item.timestamp
            key = item.key
            value = item.value
            parts = [self._head, b',"offset":', str(offset).encode("ascii"), b',"timestamp":',
                     str(timestamp).encode("ascii"), b',"timestampType":',
                     _TIMESTAMP_TYPES.get(item.timestamp_type, b'"NO_TIMESTAMP_TYPE"')]
            if key is None:
                key_b64 = b""
            else:
                key_b64 = b2a_base64(key, newline=False)
                parts.append(b',"key":"')
                parts.append(key_b64)
                parts.append(b'"')
            if value is None:
                parts.append(b',"value":null')
            else:
                parts.append(b',"value":"')
                parts.append(b2a_base64(value, newline=False))
                parts.append(b'"')
            parts.append(b',"headers":[')
            headers = item.headers
            first = True
            if headers:
                for name, data in headers:
                    if not first:
                        parts.append(b",")
                    first = False
                    parts.append(b"{")
                    parts.append(_json_str(name).encode("ascii"))
                    parts.append(b":")
                    parts.append(_byte_array(data))
                    parts.append(b"}")
            parts.append(b"]}")
            rec = Record.__new__(Record)
            rec.position = offset
            rec.seq = str(offset)
            rec.key = key_b64.decode("ascii")
            rec.arrival = timestamp / 1000.0
            rec.fragment = b"".join(parts)
            rec.done = False
            out.append(rec)
        return out


cdef object _compact = json.JSONEncoder(separators=(",", ":")).encode
cdef tuple _SQS_ATTRIBUTE_ORDER = (
    "ApproximateReceiveCount", "SentTimestamp", "SequenceNumber", "MessageGroupId", "SenderId",
    "MessageDeduplicationId", "ApproximateFirstReceiveTimestamp")


cdef str _number(object value):
    if (PyFloat_CheckExact(value) and isfinite(PyFloat_AS_DOUBLE(value))) or PyLong_CheckExact(value):
        return repr(value)
    return json.dumps(value)


@cython.final
cdef class DynamoDBEncoder:
    """Renders DynamoDB Streams GetRecords records (the API's JSON) as Lambda DynamoDB event
    records, in AWS's field order (eventVersion 1.1, creation time in whole seconds)."""

    cdef str _middle
    cdef str _tail

    def __init__(self, str region, str stream_arn):
        self._middle = (',"eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":'
                        + _json_str(region) + ',"dynamodb":{')
        self._tail = ',"eventSourceARN":' + _json_str(stream_arn) + "}"

    def encode(self, raw):
        cdef list out = []
        cdef list inner
        cdef dict ddb
        cdef str seq, keys, user
        cdef object created, image, identity, item
        cdef Record rec
        for item in raw:
            ddb = item["dynamodb"]
            seq = ddb["SequenceNumber"]
            created = ddb.get("ApproximateCreationDateTime")
            keys = _compact(ddb.get("Keys") or {})
            inner = []
            if created is not None:
                inner.append('"ApproximateCreationDateTime":' + str(int(created // 1)))
            inner.append('"Keys":' + keys)
            image = ddb.get("NewImage")
            if image is not None:
                inner.append('"NewImage":' + _compact(image))
            image = ddb.get("OldImage")
            if image is not None:
                inner.append('"OldImage":' + _compact(image))
            inner.append('"SequenceNumber":' + _json_str(seq))
            if ddb.get("SizeBytes") is not None:
                inner.append('"SizeBytes":' + _number(ddb["SizeBytes"]))
            if ddb.get("StreamViewType") is not None:
                inner.append('"StreamViewType":' + _json_str(ddb["StreamViewType"]))
            identity = item.get("userIdentity")
            if identity is None:
                user = ""
            else:
                user = (',"userIdentity":{"type":' + _json_str(identity.get("Type", ""))
                        + ',"principalId":' + _json_str(identity.get("PrincipalId", "")) + "}")
            rec = Record.__new__(Record)
            rec.fragment = "".join((
                '{"eventID":', _json_str(item["eventID"]), ',"eventName":',
                _json_str(item["eventName"]), self._middle, ",".join(inner), "}", user,
                self._tail)).encode("ascii")
            rec.position = PyLong_FromUnicodeObject(seq, 10)
            rec.seq = seq
            rec.key = keys
            rec.arrival = float(created or 0)
            rec.done = False
            out.append(rec)
        return out


def framed_size(records, Py_ssize_t start=0, end=None, Py_ssize_t fixed_bytes=0):
    cdef list recs = _span(records, start, end)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs), i
    cdef Py_ssize_t total = fixed_bytes + (n - 1 if n else 0)
    for i in range(n):
        total += _size(<object>PyList_GET_ITEM(recs, i))
    return total


def build_framed(bytes head not None, records, Py_ssize_t start=0, end=None,
                 bytes tail not None=b""):
    cdef list recs = _span(records, start, end)
    cdef Py_ssize_t n = PyList_GET_SIZE(recs), i, size
    cdef Py_ssize_t total = (PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(tail)
                             + (n - 1 if n else 0))
    for i in range(n):
        total += _size(<object>PyList_GET_ITEM(recs, i))
    cdef bytes payload = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(payload)
    cdef char* last = out + total - PyBytes_GET_SIZE(tail)
    out = _join_fragments(_put(out, head), recs, last)
    _put(out, tail)
    return payload


cdef str _sqs_message_attributes(dict attrs):
    cdef list parts = [], fields
    cdef object name, value
    for name, value in attrs.items():
        fields = []
        if "StringValue" in value:
            fields.append('"stringValue":' + _json_str(value["StringValue"]))
        if "BinaryValue" in value:
            fields.append('"binaryValue":' + _json_str(value["BinaryValue"]))
        fields.append('"stringListValues":' + _compact(value.get("StringListValues") or []))
        fields.append('"binaryListValues":' + _compact(value.get("BinaryListValues") or []))
        fields.append('"dataType":' + _json_str(value.get("DataType", "String")))
        parts.append(_json_str(name) + ":{" + ",".join(fields) + "}")
    return "{" + ",".join(parts) + "}"


cdef str _sqs_attributes(dict attrs):
    cdef list parts = []
    cdef object k, v
    for k in _SQS_ATTRIBUTE_ORDER:
        if k in attrs:
            parts.append(_json_str(k) + ":" + _json_str(str(attrs[k])))
    for k, v in attrs.items():
        if k not in _SQS_ATTRIBUTE_ORDER:
            parts.append(_json_str(k) + ":" + _json_str(str(v)))
    return "{" + ",".join(parts) + "}"


@cython.final
cdef class SqsEncoder:
    """Renders SQS ReceiveMessage messages (the JSON protocol's shape) as Lambda SQS event
    records, in AWS's field order. ``position`` counts messages in receive order, ``seq`` is
    the messageId (the itemIdentifier), ``key`` the MessageGroupId (FIFO) or messageId."""

    cdef str _tail
    cdef long long _next

    def __init__(self, str region, str queue_arn):
        self._tail = (',"eventSource":"aws:sqs","eventSourceARN":' + _json_str(queue_arn)
                      + ',"awsRegion":' + _json_str(region) + "}")
        self._next = 0

    def encode(self, raw):
        cdef list out = []
        cdef dict attrs
        cdef str mid
        cdef object msg, md5_attrs, sent, group
        cdef Record rec
        for msg in raw:
            attrs = msg.get("Attributes") or {}
            mid = msg["MessageId"]
            md5_attrs = msg.get("MD5OfMessageAttributes")
            rec = Record.__new__(Record)
            rec.fragment = "".join((
                '{"messageId":', _json_str(mid), ',"receiptHandle":',
                _json_str(msg["ReceiptHandle"]), ',"body":', _json_str(msg["Body"]),
                ',"attributes":', _sqs_attributes(attrs), ',"messageAttributes":',
                _sqs_message_attributes(msg.get("MessageAttributes") or {}),
                ',"md5OfBody":', _json_str(msg["MD5OfBody"]),
                "" if md5_attrs is None else ',"md5OfMessageAttributes":' + _json_str(md5_attrs),
                self._tail)).encode("ascii")
            sent = attrs.get("SentTimestamp")
            group = attrs.get("MessageGroupId")
            self._next += 1
            rec.position = self._next
            rec.seq = mid
            rec.key = group or mid
            rec.arrival = int(sent) / 1000.0 if sent else 0.0
            rec.done = False
            out.append(rec)
        return out


# --- Amazon MQ: RabbitMQ ("aws:rmq") and ActiveMQ ("aws:mq") messages -------------------------

from datetime import UTC as _UTC, datetime as _datetime

cdef tuple _MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov", "Dec")
cdef list _JAVA_BYTE_TEXT = [str(i - 256 if i > 127 else i) for i in range(256)]


def java_date(object when):
    """A datetime as the JSON string Lambda's Java poller writes for a Date (Gson's default,
    en_US, UTC); naive datetimes are taken as UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(_UTC)
    cdef int hour = when.hour
    cdef int h12 = hour % 12 or 12
    return (f'"{_MONTHS[when.month - 1]} {when.day}, {when.year}, {h12}:{when.minute:02d}:'
            f'{when.second:02d} {"AM" if hour < 12 else "PM"}"')


cdef str _java_bytes(const unsigned char[:] data):
    cdef Py_ssize_t i, n = data.shape[0]
    cdef list parts = [None] * n
    for i in range(n):
        parts[i] = _JAVA_BYTE_TEXT[data[i]]
    return "[" + ",".join(parts) + "]"


cdef str _rmq_value(object value):
    if type(value) is str:
        return '{"bytes":' + _java_bytes((<str>value).encode("utf-8")) + "}"
    if type(value) is bytes or type(value) is bytearray:
        return '{"bytes":' + _java_bytes(value) + "}"
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if PyLong_CheckExact(value) or PyFloat_CheckExact(value):
        return _number(value)
    if isinstance(value, dict):
        return "{" + ",".join([_json_str(str(k)) + ":" + _rmq_value(v)
                               for k, v in value.items()]) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([_rmq_value(v) for v in value]) + "]"
    if isinstance(value, _datetime):
        return java_date(value)
    return str(value)


cdef inline str _rmq_str(object value):
    return "null" if value is None else _json_str(value)


@cython.final
cdef class RabbitMqEncoder:
    """Renders RabbitMQ deliveries (aiormq DeliveredMessage: ``body``, ``redelivered``,
    ``delivery_tag``, ``header.properties``) as the messages of a Lambda ``aws:rmq`` event."""

    def encode(self, raw):
        cdef list out = []
        cdef object item, props, headers, stamp, mode, priority
        cdef bytes body
        cdef long long tag
        cdef Record rec
        for item in raw:
            props = item.header.properties
            body = item.body
            headers = props.headers
            stamp = props.timestamp
            mode = props.delivery_mode
            priority = props.priority
            rec = Record.__new__(Record)
            rec.fragment = "".join((
                '{"basicProperties":{"contentType":', _rmq_str(props.content_type),
                ',"contentEncoding":', _rmq_str(props.content_encoding),
                ',"headers":', "null" if headers is None else _rmq_value(headers),
                ',"deliveryMode":', "null" if mode is None else str(int(mode)),
                ',"priority":', "null" if priority is None else str(int(priority)),
                ',"correlationId":', _rmq_str(props.correlation_id),
                ',"replyTo":', _rmq_str(props.reply_to),
                ',"expiration":', _rmq_str(props.expiration),
                ',"messageId":', _rmq_str(props.message_id),
                ',"timestamp":', "null" if stamp is None else java_date(stamp),
                ',"type":', _rmq_str(props.message_type),
                ',"userId":', _rmq_str(props.user_id),
                ',"appId":', _rmq_str(props.app_id),
                ',"clusterId":', _rmq_str(props.cluster_id or None),
                ',"bodySize":', str(len(body)),
                '},"redelivered":', "true" if item.redelivered else "false",
                ',"data":"', b2a_base64(body, newline=False).decode("ascii"), '"}',
            )).encode("ascii")
            tag = item.delivery_tag
            rec.position = tag
            rec.seq = str(tag)
            rec.key = ""
            rec.arrival = stamp.timestamp() if stamp is not None else 0.0
            rec.done = False
            out.append(rec)
        return out


cdef frozenset _ACTIVEMQ_STANDARD_HEADERS = frozenset({
    "subscription", "message-id", "destination", "ack", "content-length", "content-type",
    "expires", "priority", "timestamp", "persistent", "redelivered", "correlation-id",
    "reply-to", "type", "destination-type", "receipt", "transaction",
})


cdef str _amq_properties(dict headers):
    return "{" + ",".join([_json_str(k) + ":" + _json_str(v) for k, v in headers.items()
                           if k not in _ACTIVEMQ_STANDARD_HEADERS
                           and not k.startswith("_")]) + "}"


@cython.final
cdef class ActiveMqEncoder:
    """Renders ActiveMQ messages received over STOMP (``(headers, body, is_bytes)``) as the
    messages of a Lambda ``aws:mq`` event; ``broker_out_time`` is when they were received."""

    cdef long long _next

    def __init__(self):
        self._next = 0

    def encode(self, raw, long long broker_out_time):
        cdef list out = []
        cdef dict headers
        cdef bytes body
        cdef object is_bytes, expires, mid
        cdef long long stamp
        cdef Record rec
        for headers, body, is_bytes in raw:
            mid = headers.get("message-id", "")
            stamp = int(headers.get("timestamp") or 0)
            expires = headers.get("expires")
            rec = Record.__new__(Record)
            rec.fragment = "".join((
                '{"messageID":', _json_str(mid), ',"messageType":',
                '"jms/bytes-message"' if is_bytes else '"jms/text-message"',
                ',"deliveryMode":', "2" if headers.get("persistent") == "true" else "1",
                ',"replyTo":', _rmq_str(headers.get("reply-to")),
                ',"type":', _rmq_str(headers.get("type")),
                ',"expiration":', "null" if not expires or expires == "0" else _json_str(expires),
                ',"priority":', str(int(headers.get("priority") or 4)),
                ',"correlationId":', _rmq_str(headers.get("correlation-id")),
                ',"redelivered":', "true" if headers.get("redelivered") == "true" else "false",
                ',"destination":{"physicalName":',
                _json_str((<str>headers.get("destination", "")).removeprefix("/queue/")),
                '},"data":"', b2a_base64(body, newline=False).decode("ascii"),
                '","timestamp":', str(stamp), ',"brokerInTime":', str(stamp),
                ',"brokerOutTime":', str(broker_out_time),
                ',"properties":', _amq_properties(headers), "}",
            )).encode("ascii")
            self._next += 1
            rec.position = self._next
            rec.seq = mid
            rec.key = ""
            rec.arrival = stamp / 1000.0
            rec.done = False
            out.append(rec)
        return out


cdef extern from *:
    """
    #include <string.h>

    /* 1 when a run of 19+ digits stands outside JSON strings: an integer orjson may read
       differently from json.loads (beyond 64 bits it makes a float). Strings are skipped with
       memchr (a quote preceded by an odd run of backslashes is escaped). False alarms only
       cost speed; for valid JSON there are no misses. */
    static int poller_long_integer(const unsigned char *p, Py_ssize_t n) {
        const unsigned char *end = p + n;
        int run = 0;
        while (p < end) {
            unsigned char c = *p++;
            if (c >= '0' && c <= '9') {
                if (++run >= 19) return 1;
                continue;
            }
            run = 0;
            if (c != '"') continue;
            for (;;) {  /* inside a string: find its closing quote */
                const unsigned char *q = memchr(p, '"', (size_t)(end - p));
                if (q == NULL) return 0;  /* unterminated: invalid, the parser says so */
                const unsigned char *b = q;
                while (b > p && b[-1] == '\\\\') b--;
                p = q + 1;
                if (((q - b) & 1) == 0) break;
            }
        }
        return 0;
    }
    """
    int poller_long_integer(const unsigned char* p, Py_ssize_t n) nogil


def long_integer(const unsigned char[::1] payload) -> bool:
    """True when ``payload`` (JSON) may hold an integer of 19+ digits outside its strings."""
    if payload.shape[0] == 0:
        return False
    return poller_long_integer(&payload[0], payload.shape[0]) != 0
