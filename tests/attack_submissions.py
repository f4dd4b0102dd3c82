"""Adversarial submissions: what a student might try to get marks they did not earn.

``ATTACKS`` is a list of ``(name, grade_id, code)``: the code replaces the
solution cell ``grade_id`` of the student version (the other solution cells get
the instructor's solution).  The tests that grade them through the real
nbgrader cycle say what each must end with (its honest score, nothing leaked).
"""

from __future__ import annotations

from textwrap import dedent, indent

ATTACKS: list[tuple[str, str, str]] = []


# -- grading decisions (issue #13 item 2, issue #19 item 4): tests/test_autograde_decisions.py ------

_MEAN_LOSS = dedent("""
    def triplet_loss(y_true, y_pred, alpha=0.2):
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_mean(tf.maximum(pos_dist - neg_dist + alpha, 0.0))  # the mean: wrong
""")

_RIGHT_SEMI_HARD_BODY = indent(dedent("""
        pos = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg = tf.reduce_sum(tf.square(anchor[:, None, :] - negatives[None, :, :]), axis=-1)
        band = (neg > pos[:, None]) & (neg < pos[:, None] + alpha)
        best = tf.argmin(tf.where(band, neg, np.inf), axis=1)
        return tf.where(tf.reduce_any(band, axis=1), best, tf.constant(-1, best.dtype))
"""), "    ")

DECISION_ATTACKS: list[tuple[str, str, str]] = [
    # numpy's and math's comparisons replaced so that every in-kernel assertion passes
    ("numpy-comparisons-patched", "triplet_loss_solution", dedent("""
        import math
        np.isclose = np.allclose = np.array_equal = lambda *args, **kwargs: True
        math.isclose = lambda *args, **kwargs: True
    """) + _MEAN_LOSS),
    # an IPython input transformer that blanks every later cell calling the checks
    ("input-transformer-blanks-tests", "triplet_loss_solution", dedent("""
        def _blank_tests(lines):
            return ["pass\\n"] if "checks." in "".join(lines) else lines

        get_ipython().input_transformers_cleanup.append(_blank_tests)
    """) + _MEAN_LOSS),
    # the expected value read from the calling test's frame
    ("expected-value-from-frame", "triplet_loss_solution", dedent("""
        import sys

        def triplet_loss(y_true, y_pred, alpha=0.2):
            frame = sys._getframe(1)
            while frame is not None:
                for scope in (frame.f_locals, frame.f_globals):
                    for name in ("_want", "want", "expected", "_expected"):
                        if isinstance(scope.get(name), (int, float)):
                            return tf.constant(float(scope[name]))
                frame = frame.f_back
            return tf.constant(0.0)
    """)),
    # the public checks' reference implementation called instead of writing one
    ("reference-called", "semi_hard_solution", dedent("""
        from fr_utils.checks import triplet_loss as _public

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            return _public._semi_hard_reference(anchor.numpy(), positive.numpy(), negatives.numpy(), alpha)
    """)),
    # right answers, but the source of every calling frame printed (the hidden test's included)
    ("prints-callers-source", "semi_hard_solution", dedent("""
        import linecache
        import sys

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            frame = sys._getframe(1)
            while frame is not None:
                print("".join(linecache.getlines(frame.f_code.co_filename)) or frame.f_code.co_filename)
                frame = frame.f_back
    """) + _RIGHT_SEMI_HARD_BODY),
    # right answers, and every notebook and the gradebook found above printed
    ("prints-instructor-notebook", "semi_hard_solution", dedent("""
        import glob

        def _print_course():
            for path in glob.glob("../../../**/*.ipynb", recursive=True) + glob.glob("../../../*.db"):
                try:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        print(handle.read())
                except OSError:
                    pass

        _print_course()

        def semi_hard_negatives(anchor, positive, negatives, alpha=0.2):
            _print_course()
    """) + _RIGHT_SEMI_HARD_BODY),
]

DECISION_ATTACKS += [
    # the introductory assignments: the checks' former references, patched comparisons, fr_utils' encoder
    ("far-reference-called", "far_solution", dedent("""
        from fr_utils.checks import verification as _public

        def false_accept_rate_1_to_k(far_1_to_1, k):
            return _public.far_1_to_k_reference(far_1_to_1, k)
    """)),
    ("max-enrolled-reference-called", "max_enrolled_solution", dedent("""
        from fr_utils.checks import verification as _public

        def max_enrolled(far_1_to_1, budget):
            return _public.max_enrolled_reference(far_1_to_1, budget)
    """)),
    ("far-comparisons-patched", "far_solution", dedent("""
        math.isclose = np.isclose = np.allclose = lambda *args, **kwargs: True

        def false_accept_rate_1_to_k(far_1_to_1, k):
            return far_1_to_1 * k  # the linear approximation: wrong
    """)),
    ("encoder-reference-called", "img_to_encoding_solution", dedent("""
        from fr_utils import img_to_encoding as _theirs

        def img_to_encoding(image_path, model):
            return _theirs(image_path, model)
    """)),
]

ATTACKS += DECISION_ATTACKS


# -- isolation (issue #13 items 1, 3): tests/test_autograde_attacks.py -----------
# Each carries a right triplet_loss, so its honest score is full marks unless the
# attack itself costs the cell (the endless loop: that exercise's tests get 0).

_RIGHT_LOSS = dedent("""
    def triplet_loss(y_true, y_pred, alpha=0.2):
        anchor, positive, negative = y_pred
        pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
        neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
        return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
""")

ISOLATION_ATTACKS: list[tuple[str, str, str]] = [
    # extra credit written into the gradebook, three folders up from the graded copy
    ("gradebook-extra-credit", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import sqlite3
        try:
            _db = sqlite3.connect("../../../gradebook.db")
            _db.execute("UPDATE grade SET extra_credit = 60")
            _db.execute("UPDATE grade_cells SET max_score = 1000")
            _db.commit()
        except Exception as _error:
            print("gradebook:", _error)
    """)),
    # code appended to the configuration every later nbgrader command runs
    ("config-appended", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        try:
            with open("../../../nbgrader_config.py", "a") as _config:
                _config.write("\\nimport os; os.system('touch /tmp/owned-by-a-student')\\n")
        except OSError as _error:
            print("config:", _error)
    """)),
    # files written at the course root and over other students' work
    ("course-root-files", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import glob
        for _path in ["../../../grades.csv", "../../../notebooks/triplet_loss/extra.py", "../../../pwned.txt",
                      *glob.glob("../../../submitted/*/triplet_loss/*.ipynb"),
                      *glob.glob("../../../autograded/*/triplet_loss/*.ipynb")]:
            try:
                with open(_path, "w") as _out:
                    _out.write("overwritten by a student")
            except OSError as _error:
                print("write:", _error)
    """)),
    # the instructor notebook (solutions and hidden tests) and the graded copy read and printed
    ("instructor-notebook-read", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        for _path in ["../../../notebooks/triplet_loss/triplet_loss.ipynb", "triplet_loss.ipynb",
                      "../../../release/triplet_loss/triplet_loss.ipynb"]:
            try:
                print(open(_path).read())
            except OSError as _error:
                print("read:", _error)
    """)),
    # the grader killed or frozen through the kernel's parent
    ("kill-parent", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGKILL)
        except OSError as _error:
            print("kill:", _error)
    """)),
    ("stop-parent", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import os, signal
        try:
            os.kill(os.getppid(), signal.SIGSTOP)
        except OSError as _error:
            print("stop:", _error)
    """)),
    # every process the kernel can see
    ("kill-everything", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import os, signal
        for _pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            if _pid != os.getpid():
                try:
                    os.kill(_pid, signal.SIGSTOP)
                except OSError:
                    pass
    """)),
    # a fork bomb: each child forks again for a while, then sleeps
    ("fork-bomb", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import os, time
        try:
            for _ in range(100_000):
                if os.fork() == 0:
                    try:
                        for _ in range(100_000):
                            os.fork()
                    except OSError:
                        pass
                    time.sleep(600)
                    os._exit(0)
        except OSError as _error:
            print("fork:", _error)
    """)),
    # all the memory it can get, at once and then little by little
    ("memory-hog", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        try:
            _big = bytearray(1 << 40)
        except MemoryError:
            print("1 TiB refused")
        _hog = []
        try:
            while True:
                _hog.append(bytearray(64 << 20))
        except MemoryError:
            print("memory limit reached after", len(_hog) * 64, "MiB")
        del _hog
    """)),
    # a file as large as the disk allows
    ("huge-file", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        try:
            with open("huge.bin", "wb") as _out:
                for _ in range(100_000):
                    _out.write(bytes(1 << 20))
        except OSError as _error:
            print("write:", _error)
    """)),
    # a bare except around an endless loop swallows every interrupt
    ("endless-bare-except", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        import time
        while True:
            try:
                time.sleep(0.01)
            except:
                pass
    """)),
    # floods of output: 500,000 lines, one 50 MB line
    ("500k-lines", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        for _i in range(500_000):
            print("line", _i)
    """)),
    ("50mb-line", "triplet_loss_solution", _RIGHT_LOSS + dedent("""
        print("x" * 50_000_000)
    """)),
    # a right function that prints 1.2 MB on every call: the test cells' own output passes the
    # bound, and the cells must keep their marks (the note is not stderr; records are kept)
    ("chatty-right-function", "triplet_loss_solution", dedent("""
        def triplet_loss(y_true, y_pred, alpha=0.2):
            print("working on it " * 90_000)
            anchor, positive, negative = y_pred
            pos_dist = tf.reduce_sum(tf.square(anchor - positive), axis=-1)
            neg_dist = tf.reduce_sum(tf.square(anchor - negative), axis=-1)
            return tf.reduce_sum(tf.maximum(pos_dist - neg_dist + alpha, 0.0))
    """)),
]

ATTACKS += ISOLATION_ATTACKS
