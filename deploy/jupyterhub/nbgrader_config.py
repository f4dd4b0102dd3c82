"""Hub-wide nbgrader configuration: every user's server on the classroom hub reads it.

nbgrader's JupyterHub guide puts this file in a folder on every user's Jupyter
config path (``/etc/jupyter/`` on a real hub).  ``classroom.py setup`` copies it to
``<state>/etc/jupyter/`` and the hub's spawner puts that folder on
``JUPYTER_CONFIG_PATH``, so a student needs nothing from the repository.

It names the one course of this hub and the exchange folder every user shares:
the instructor releases into it and collects from it, students fetch from it and
submit into it.  The folder comes from ``FR_EXCHANGE_ROOT`` (set by the hub's
spawner from the classroom settings; the course's own nbgrader_config.py reads
the same variable); outside the hub this file refuses to guess.
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

exchange = os.environ.get("FR_EXCHANGE_ROOT", "")
if not exchange:
    raise RuntimeError(
        "deploy/jupyterhub/nbgrader_config.py: FR_EXCHANGE_ROOT is not set; "
        "it is the hub-wide config, read by servers the classroom hub starts "
        "(deploy/jupyterhub/jupyterhub_config.py sets it)"
    )
c.CourseDirectory.course_id = "facenet"
c.Exchange.root = exchange
