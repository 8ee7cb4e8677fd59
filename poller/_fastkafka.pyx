# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Kafka event records straight from aiokafka's decoded record batches (Cython).

``poller.kafka_records`` holds the pure-Python twin and the switch between them; both produce
byte-identical fragments, equal to ``KafkaEncoder``'s for the same records."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdio cimport snprintf
from libc.string cimport memcpy

from poller._fastbatch cimport Record

from json.encoder import encode_basestring_ascii as _json_str


cdef const char* _B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef bytes _OFFSET = b',"offset":'
cdef bytes _TIMESTAMP = b',"timestamp":'
cdef bytes _KEY = b',"key":"'
cdef bytes _VALUE = b',"value":"'
cdef bytes _NULL_VALUE = b',"value":null'
cdef bytes _HEADERS = b'","headers":['  # after a value: closes its string
cdef bytes _HEADERS_AFTER_NULL = b',"headers":['
cdef tuple _TYPES = (b',"timestampType":"CREATE_TIME"', b',"timestampType":"LOG_APPEND_TIME"')
cdef bytes _NO_TYPE = b',"timestampType":"NO_TIMESTAMP_TYPE"'
cdef list _BYTE_TEXT = [str(i).encode("ascii") for i in range(256)]


cdef inline Py_ssize_t _b64_len(Py_ssize_t n) noexcept:
    return ((n + 2) // 3) * 4


cdef char* _b64(char* out, const unsigned char* src, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0
    cdef unsigned int v
    while i + 2 < n:
        v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2]
        out[0] = _B64[(v >> 18) & 63]
        out[1] = _B64[(v >> 12) & 63]
        out[2] = _B64[(v >> 6) & 63]
        out[3] = _B64[v & 63]
        out += 4
        i += 3
    if n - i == 1:
        v = src[i] << 16
        out[0] = _B64[(v >> 18) & 63]
        out[1] = _B64[(v >> 12) & 63]
        out[2] = b"="
        out[3] = b"="
        out += 4
    elif n - i == 2:
        v = (src[i] << 16) | (src[i + 1] << 8)
        out[0] = _B64[(v >> 18) & 63]
        out[1] = _B64[(v >> 12) & 63]
        out[2] = _B64[(v >> 6) & 63]
        out[3] = b"="
        out += 4
    return out


cdef inline char* _put(char* out, bytes piece) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(piece)
    memcpy(out, PyBytes_AS_STRING(piece), n)
    return out + n


cdef inline char* _put_c(char* out, const char* piece, Py_ssize_t n) noexcept:
    memcpy(out, piece, n)
    return out + n


cdef bytes _headers(object headers):
    """The headers array's items: ``{"name":[byte,...]}`` objects (null for a null value)."""
    cdef list parts = []
    cdef object name, data
    cdef const unsigned char[:] view
    cdef Py_ssize_t i
    for name, data in headers:
        if parts:
            parts.append(b",")
        parts.append(b"{" + _json_str(name).encode("ascii") + b":")
        if data is None:
            parts.append(b"null")
        else:
            view = data
            parts.append(b"[" + b",".join([_BYTE_TEXT[view[i]] for i in range(view.shape[0])])
                         + b"]")
        parts.append(b"}")
    return b"".join(parts)


def encode_records(bytes head, object records, long long min_offset):
    """Records (aiokafka's ``DefaultRecord``/``LegacyRecord``: ``offset``, ``timestamp``,
    ``timestamp_type``, ``key``, ``value``, ``headers``) at ``min_offset`` or later, rendered
    behind ``head`` (``{"topic":...,"partition":N``) as Lambda Kafka event records."""
    cdef list out = []
    cdef object item, key, value, headers
    cdef str key_text
    cdef Record record
    cdef long long offset, timestamp
    cdef int n_off, n_ts
    cdef object kind_obj
    cdef long long kind
    cdef char off_text[24]
    cdef char ts_text[24]
    cdef bytes type_text, extra, fragment
    cdef const unsigned char* kp
    cdef const unsigned char* vp
    cdef Py_ssize_t kn, vn, size
    cdef char* w
    for item in records:
        offset = item.offset
        if offset < min_offset:
            continue
        timestamp = item.timestamp
        kind_obj = item.timestamp_type  # None for message format v0
        if kind_obj is None:
            type_text = _NO_TYPE
        else:
            kind = kind_obj
            type_text = <bytes>_TYPES[kind] if 0 <= kind <= 1 else _NO_TYPE
        key = item.key
        value = item.value
        if key is not None and type(key) is not bytes:
            key = bytes(key)
        if value is not None and type(value) is not bytes:
            value = bytes(value)
        headers = item.headers
        extra = _headers(headers) if headers else b""
        n_off = snprintf(off_text, 24, b"%lld", offset)
        n_ts = snprintf(ts_text, 24, b"%lld", timestamp)
        size = (PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(_OFFSET) + n_off
                + PyBytes_GET_SIZE(_TIMESTAMP) + n_ts + PyBytes_GET_SIZE(type_text)
                + PyBytes_GET_SIZE(extra) + 2)
        kn = vn = 0
        kp = vp = NULL
        if key is not None:
            kp = <const unsigned char*>PyBytes_AS_STRING(key)
            kn = PyBytes_GET_SIZE(key)
            size += PyBytes_GET_SIZE(_KEY) + _b64_len(kn) + 1
        if value is None:
            size += PyBytes_GET_SIZE(_NULL_VALUE) + PyBytes_GET_SIZE(_HEADERS_AFTER_NULL)
        else:
            vp = <const unsigned char*>PyBytes_AS_STRING(value)
            vn = PyBytes_GET_SIZE(value)
            size += PyBytes_GET_SIZE(_VALUE) + _b64_len(vn) + PyBytes_GET_SIZE(_HEADERS)
        fragment = PyBytes_FromStringAndSize(NULL, size)
        w = PyBytes_AS_STRING(fragment)
        w = _put(w, head)
        w = _put(w, _OFFSET)
        w = _put_c(w, off_text, n_off)
        w = _put(w, _TIMESTAMP)
        w = _put_c(w, ts_text, n_ts)
        w = _put(w, type_text)
        if kp != NULL:
            w = _put(w, _KEY)
            w = _b64(w, kp, kn)
            w[0] = b'"'
            w += 1
            key_text = PyUnicode_DecodeASCII(w - 1 - _b64_len(kn), _b64_len(kn), NULL)
        else:
            key_text = ""
        if value is None:
            w = _put(w, _NULL_VALUE)
            w = _put(w, _HEADERS_AFTER_NULL)
        else:
            w = _put(w, _VALUE)
            w = _b64(w, vp, vn)
            w = _put(w, _HEADERS)
        w = _put(w, extra)
        w[0] = b"]"
        w[1] = b"}"
        record = Record.__new__(Record)  # no Python-level call: fields set in C
        record.position = offset
        record.seq = PyUnicode_DecodeASCII(off_text, n_off, NULL)
        record.key = key_text
        record.arrival = timestamp / 1000.0
        record.fragment = fragment
        out.append(record)
    return out
