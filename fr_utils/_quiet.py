"""TensorFlow's start-up log, kept out of notebooks and terminals.

TensorFlow 2.21 writes a block of C++ log lines to the process's stderr while it
is imported ("All log messages before absl::InitializeLog() ...", "oneDNN custom
operations are on ..."); ``TF_CPP_MIN_LOG_LEVEL`` no longer silences them, and
Jupyter kernels forward that file descriptor into every notebook's output.

:func:`install` (called by ``import fr_utils``) adds an import hook: the first
``import tensorflow``, wherever it comes from (fr_utils, keras, a notebook), runs
with file descriptor 2 pointed at the null device. Errors still surface as Python
exceptions; nothing else is silenced, and nothing at all once TensorFlow is in.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys


@contextlib.contextmanager
def stderr_fd_silenced():
    """Point file descriptor 2 at the null device for the block (Python's sys.stderr is flushed first)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with stderr_fd_silenced():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders, and loads it quietly, once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one use: TensorFlow is imported once per process
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Load TensorFlow quietly when it is first imported (no-op if it already is)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
