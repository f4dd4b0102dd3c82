"""TensorFlow's start-up log is kept out of the output, but not when the import fails (fr_utils/_quiet.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the hook must work without it
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_importing_tensorflow_after_fr_utils_prints_nothing_on_stderr():
    done = _run("""
        import fr_utils
        import tensorflow as tf
        print("version", tf.__version__)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("version ")
    assert done.stderr == "", f"TensorFlow's start-up log leaked:\n{done.stderr}"


def test_the_captured_text_is_dropped_after_a_clean_block_and_shown_after_a_failure():
    done = _run("""
        import os
        from fr_utils._quiet import stderr_fd_silenced
        with stderr_fd_silenced():
            os.write(2, b"noise from a clean block\\n")
        try:
            with stderr_fd_silenced():
                os.write(2, b"libfoo.so: cannot open shared object file\\n")
                raise ImportError("tensorflow failed")
        except ImportError as error:
            print("caught", error)
        os.write(2, b"after\\n")
    """)
    assert done.returncode == 0, done.stderr
    assert "caught tensorflow failed" in done.stdout
    assert "noise from a clean block" not in done.stderr
    assert done.stderr.splitlines() == ["libfoo.so: cannot open shared object file", "after"]
