"""TensorFlow's start-up log, kept out of notebooks and terminals.

TensorFlow 2.21 writes a block of C++ log lines to the process's stderr while it
is imported ("All log messages before absl::InitializeLog() ...", "oneDNN custom
operations are on ..."); ``TF_CPP_MIN_LOG_LEVEL`` no longer silences them, and
Jupyter kernels forward that file descriptor into every notebook's output.

:func:`install` (called by ``import fr_utils``) adds an import hook: the first
``import tensorflow``, wherever it comes from (fr_utils, keras, a notebook), runs
with file descriptor 2 captured (see :func:`stderr_fd_silenced`): dropped when the
import succeeds, shown when it fails. Nothing else is silenced, and nothing at all
once TensorFlow is in.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
import tempfile


@contextlib.contextmanager
def stderr_fd_silenced():
    """Keep what is written to file descriptor 2 during the block off the screen.

    The text goes to an anonymous temporary file.  If the block raises, that text
    is written back to file descriptor 2 before the exception propagates, so a
    failed import still shows the C++ lines that explain it (a missing library, an
    unsupported CPU instruction); after a clean block it is dropped.
    """
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to silence
        yield
        return
    try:
        captured = tempfile.TemporaryFile()
    except OSError:  # no writable temporary folder: fall back to the null device
        captured = open(os.devnull, "wb")
    failed = False
    try:
        os.dup2(captured.fileno(), 2)
        yield
    except BaseException:
        failed = True
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            with contextlib.suppress(Exception):
                captured.seek(0)
                os.write(2, captured.read())
        captured.close()


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
