"""Builds the optional Cython batcher; without a compiler the pure-Python twin is used."""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the extension when possible; warn once and continue without it otherwise."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure: use the twin
            _warn(exc)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(exc)
            # nothing was built: keep `--inplace` and install from copying a missing file
            self.extensions = [e for e in self.extensions if e is not ext]


_warned = False


def _warn(exc: BaseException) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    sys.stderr.write(
        "WARNING: esm-poller's Cython batcher could not be built "
        f"({type(exc).__name__}: {exc}); the pure-Python twin will be used.\n"
    )


def _extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("POLLER_NO_EXTENSIONS") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn(ImportError("Cython is not installed"))
        return []
    return cythonize(
        ["poller/_fastbatch.pyx", "poller/_fastkafka.pyx"],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
