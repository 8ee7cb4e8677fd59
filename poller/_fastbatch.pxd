# Declarations other Cython modules cimport (poller._fastkafka builds Records at C level).

cdef class Record:
    cdef public object position
    cdef public str seq
    cdef public str key
    cdef public double arrival
    cdef public bytes fragment
    cdef public bint done
