"""The instructor's grading side of the FaceNet course (not part of the fr_utils wheel).

nbgrader_config.py puts the repository root on ``sys.path`` to import it; pytest
finds it through ``pythonpath = ["."]`` in pyproject.toml.

    grader.sandbox   every submission's kernel runs inside bubblewrap (issue #13)
    grader.cells     locked cells restored without false "checksum has changed" warnings (issue #12)
    grader.submissions  one clear autograde log line for a file that is not the notebook (issue #12)
    grader.exercise  an instructor's own exercise: grader/exercises/<notebook>.py (docs/instructors.md, issue #14)
"""
