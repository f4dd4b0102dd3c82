"""Run each submission's kernel inside a bubblewrap sandbox (issue #13).

Work in progress: the kernel manager that wraps the kernel command lands next.
"""
