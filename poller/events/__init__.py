"""Exact AWS event shapes per source, and the on-failure record shape."""
