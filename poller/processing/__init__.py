"""Batches in, invocations out: lanes, the processor and the ordered checkpoint."""
