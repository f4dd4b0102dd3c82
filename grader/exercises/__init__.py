"""Instructors' own graded exercises: ``grader/exercises/<notebook>.py`` per notebook.

Each module defines ``CELLS``, ``{grade_id: [Case, ...]}`` of the notebook's
graded test cells, usually built with :func:`grader.exercise.calls`;
``grader.cases.graded_cells`` finds it by the notebook's name (how: docs/instructors.md).
"""
