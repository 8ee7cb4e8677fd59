"""esm-poller: a self-hosted event source mapping service."""

__version__ = "0.1.0"
