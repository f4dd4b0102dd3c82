"""JupyterHub configuration for the FaceNet class on one machine.

Started by ``deploy/jupyterhub/classroom.py start`` (``make classroom``), which
sets ``FR_CLASSROOM_SETTINGS`` to the ``classroom.json`` its ``setup`` wrote:
users, ports, paths and the shared password.  What a real deployment changes is
in docs/classroom.md, section "JupyterHub".
"""

import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file

settings_path = os.environ.get("FR_CLASSROOM_SETTINGS", "")
if not settings_path or not Path(settings_path).is_file():
    raise SystemExit(
        f"deploy/jupyterhub/jupyterhub_config.py: FR_CLASSROOM_SETTINGS={settings_path!r} is not a file; "
        "start the hub with `make classroom` (deploy/jupyterhub/classroom.py run)"
    )
S = json.loads(Path(settings_path).read_text())
state, hub_dir = Path(S["state"]), Path(S["state"]) / "hub"

# -- network: everything on the loopback interface -----------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{S['port']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = S["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{S['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [S["proxy"]]  # configurable-http-proxy from npm (make hub-deps)
c.ConfigurableHTTPProxy.should_start = True

# -- the hub's own state: private to root ----------------------------------------
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# -- who may log in: the listed users, one shared password ---------------------
# SharedPasswordAuthenticator is JupyterHub's DummyAuthenticator-with-a-password
# (DummyAuthenticator.password is deprecated since JupyterHub 5.3).  A demo only:
# anyone who knows the password can log in as any listed user.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = Path(S["password_file"]).read_text().strip()
c.Authenticator.allowed_users = {S["instructor"], *S["student_names"]}
# Hub admins may act as any user; the instructor needs no such power (nbgrader's
# "one class, one grader" set-up), so there are none.
c.Authenticator.admin_users = set()

# -- each user's server: a local process running as that system user -----------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(Path(S["server_bin"]) / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180  # JupyterLab with nbgrader on a busy 2-core machine
c.Spawner.http_timeout = 180
c.LocalProcessSpawner.ip = "127.0.0.1"

# Nothing of root's environment but the locale: in particular no PYTHONPATH,
# which would hand a student's kernel the repository's fr_utils.
c.Spawner.env_keep = ["LANG", "LC_ALL"]
environment = {
    # nbgrader shells out to alembic: the servers' bin/ goes first
    "PATH": f"{S['server_bin']}:/usr/local/bin:/usr/bin:/bin",
    # the hub-wide nbgrader_config.py (course id, exchange)
    "JUPYTER_CONFIG_PATH": S["config_dir"],
    "FR_EXCHANGE_ROOT": S["exchange"],
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
if S.get("weights_dir"):  # the instructor's (autograding) kernels
    environment["FR_WEIGHTS_DIR"] = S["weights_dir"]
if os.environ.get("FR_CAST_DIR"):  # the course's cast, for every user's kernels (docs/instructors.md)
    environment["FR_CAST_DIR"] = os.path.abspath(os.environ["FR_CAST_DIR"])
c.Spawner.environment = environment


def students_kernel(spawner):
    """Students' notebooks run in the student environment (no solutions, no hidden
    tests): its ``python3`` kernel comes first on their JUPYTER_PATH.  The instructor
    keeps the servers' own kernel, which autogrades with the course's checks."""
    if spawner.user.name in S["student_names"]:
        environment = {**spawner.environment, "JUPYTER_PATH": S["student_data_dir"]}
        environment.pop("FR_WEIGHTS_DIR", None)  # theirs are in the student environment
        spawner.environment = environment


c.Spawner.pre_spawn_hook = students_kernel
