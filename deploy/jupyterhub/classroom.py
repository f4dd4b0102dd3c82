"""A demo class for the FaceNet course on JupyterHub, on this machine.

    sudo make classroom            # = classroom.py setup, then classroom.py start

``setup`` (root: it creates system users) prepares a class under a state folder
(default ``/srv/facenet-classroom``), following nbgrader's "one class, one grader"
JupyterHub set-up:

* system users ``fr-instructor`` and ``fr-student1..N``, each with a private home
  (mode 700): a student cannot read the instructor's course folder (solutions,
  hidden tests, gradebook) nor another student's work;
* the instructor's course folder ``~fr-instructor/facenet``: a copy of the
  repository's course side (``notebooks/``, ``nbgrader_config.py``, ``grader/``),
  owned by the instructor, plus ``~/.jupyter/nbgrader_config.py`` pointing nbgrader
  at it (the Formgrader's course);
* students with only the Assignment List: the Formgrader, Create Assignment and
  Course List extensions disabled per user (``jupyter server extension disable
  --user`` / ``jupyter labextension disable --level=user``, as nbgrader's guide says);
* the shared exchange ``<state>/exchange`` (world-writable, as nbgrader needs) and
  the hub-wide nbgrader config (course ``facenet``) in ``<state>/etc/jupyter``;
* the students' kernel: a ``python3`` kernel of the student environment
  (``deploy/make_student_env.sh``: the fr_utils wheel and the weights, no
  solutions, no hidden tests), first on the students' JUPYTER_PATH;
* ``<state>/hub/classroom.json``: what ``jupyterhub_config.py`` reads (users,
  ports, the shared password, paths).

``start`` runs JupyterHub (root, so that it can start each user's server as that
user) on 127.0.0.1 only and prints the URL, the users and the password.
``tests/test_classroom_e2e.py`` drives the same two steps with its own users.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COURSE_ID = "facenet"
COURSE_SIDE = ("notebooks", "nbgrader_config.py", "grader")
PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
STUDENT_ENV_SCRIPT = REPO / "deploy" / "make_student_env.sh"
# What a student does not get (nbgrader's JupyterHub guide): the instructor's
# Formgrader (server side and Lab side), Create Assignment and the Course List.
STUDENT_OFF_SERVER = ("nbgrader.server_extensions.formgrader",)
STUDENT_OFF_LAB = (
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:course-list",
)


class ClassroomError(RuntimeError):
    """A classroom that cannot be set up or started; the message says why."""


@dataclass
class Classroom:
    state: Path = Path("/srv/facenet-classroom")
    students: int = 2
    prefix: str = "fr-"
    home_root: Path = Path("/home")
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    # The servers' environment (JupyterLab, nbgrader, jupyterhub-singleuser, and
    # fr_utils for the instructor's autograding kernels): set by setup(), see
    # _server_env().
    server_bin: Path | None = None
    student_env: Path | None = None
    weights_dir: Path | None = None

    @classmethod
    def load(cls, state: Path) -> "Classroom":
        """The classroom ``setup`` wrote into ``state``."""
        settings_file = state / "hub" / "classroom.json"
        if not settings_file.exists():
            raise ClassroomError(f"{settings_file} not found: run `classroom.py setup` first")
        saved = json.loads(settings_file.read_text())
        paths = ("state", "home_root", "server_bin", "student_env", "weights_dir")
        return cls(**{
            name: (Path(saved[name]) if name in paths and saved[name] else saved[name])
            for name in asdict(cls())
        })

    # -- names and places ------------------------------------------------------

    @property
    def instructor(self) -> str:
        return f"{self.prefix}instructor"

    @property
    def student_names(self) -> list[str]:
        return [f"{self.prefix}student{i}" for i in range(1, self.students + 1)]

    @property
    def users(self) -> list[str]:
        return [self.instructor, *self.student_names]

    def home(self, user: str) -> Path:
        return self.home_root / user

    @property
    def course(self) -> Path:
        return self.home(self.instructor) / COURSE_ID

    @property
    def exchange(self) -> Path:
        return self.state / "exchange"

    @property
    def hub_dir(self) -> Path:
        return self.state / "hub"

    @property
    def config_dir(self) -> Path:
        """The hub-wide Jupyter config folder (``/etc/jupyter`` on a real hub)."""
        return self.state / "etc" / "jupyter"

    @property
    def student_data_dir(self) -> Path:
        """Holds ``kernels/python3``: the students' kernel, first on their JUPYTER_PATH."""
        return self.state / "share" / "jupyter"

    @property
    def settings_file(self) -> Path:
        return self.hub_dir / "classroom.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def password(self) -> str:
        return (self.hub_dir / "password").read_text().strip()

    # -- set-up ----------------------------------------------------------------

    def setup(self, reset: bool = False, log=print) -> None:
        """Users, homes, course copy, exchange, per-user extensions, settings. Root only."""
        if os.geteuid() != 0:
            raise ClassroomError(
                "classroom setup must run as root: it creates the system users "
                f"{', '.join(self.users)} and JupyterHub starts each one's server as that user"
            )
        for tool in ("useradd", "usermod", "runuser"):
            if shutil.which(tool) is None:
                raise ClassroomError(f"classroom setup needs `{tool}` (Debian package passwd/util-linux)")
        if not PROXY.exists():
            raise ClassroomError(f"{PROXY} not found: run `make hub-deps` (npm install in {HERE})")

        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o755)
        self.hub_dir.mkdir(exist_ok=True)
        self.hub_dir.chmod(0o700)
        password_file = self.hub_dir / "password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12) + "\n")
        password_file.chmod(0o600)

        for user in self.users:
            self._user(user, reset)
        self.server_bin = self._server_env(log)
        if reset and self.exchange.exists():
            shutil.rmtree(self.exchange)
        self.exchange.mkdir(exist_ok=True)
        self.exchange.chmod(0o777)  # nbgrader: everyone writes into the exchange

        self.config_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "nbgrader_config.py", self.config_dir / "nbgrader_config.py")
        for folder in (self.state / "etc", self.config_dir):
            folder.chmod(0o755)
        (self.config_dir / "nbgrader_config.py").chmod(0o644)

        self._course(reset, log)
        for student in self.student_names:
            self._student_extensions(student)
        kernel_python = self._student_kernel(log)

        self.settings_file.write_text(json.dumps(self.settings(kernel_python), indent=2) + "\n")
        log(f"classroom ready in {self.state}: {', '.join(self.users)}")

    def settings(self, student_python: Path) -> dict:
        """What jupyterhub_config.py reads (``<state>/hub/classroom.json``)."""
        return {
            **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()},
            "instructor": self.instructor,
            "student_names": self.student_names,
            "exchange": str(self.exchange),
            "config_dir": str(self.config_dir),
            "student_data_dir": str(self.student_data_dir),
            "student_python": str(student_python),
            "proxy": str(PROXY),
            "password_file": str(self.hub_dir / "password"),
        }

    def _run_as(self, user: str, *argv: str) -> None:
        env = {
            "HOME": str(self.home(user)),
            "PATH": f"{self.server_bin}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        done = subprocess.run(
            ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
            capture_output=True, text=True, cwd="/",
        )
        if done.returncode != 0:
            raise ClassroomError(f"as {user}: {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def _user(self, user: str, reset: bool) -> None:
        home = self.home(user)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--home-dir", str(home), "--no-create-home", "--user-group",
                 "--shell", "/bin/bash", user],
                check=True,
            )
            entry = pwd.getpwnam(user)
        else:
            if entry.pw_dir != str(home):
                subprocess.run(["usermod", "--home", str(home), user], check=True)
        if reset and home.exists():
            shutil.rmtree(home)
        home.parent.mkdir(parents=True, exist_ok=True)
        home.mkdir(exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        home.chmod(0o700)  # private: nobody else reads solutions or another's work

    def _server_env(self, log) -> Path:
        """The bin/ of an environment every user may run, with what this script's has.

        Normally the environment running this script (the project's .venv).  When
        its Python is private to root (pyenv under /root, mode 700), a "view" of it
        in <state>/server-env: a virtual environment of a copy of that Python which
        imports this environment's packages (a .pth file), runs copies of its
        commands and shares its share/ and etc/ (Jupyter's extensions and settings).
        Nothing is installed twice; the packages stay those of requirements.txt.
        """
        here = Path(sys.prefix)
        if not searchable_by_all(here):
            raise ClassroomError(f"{here} is not reachable by other users: their servers could not run it")
        if searchable_by_all(Path(sys.executable).resolve().parent):
            return here / "bin"
        base = self._base_python(log)
        env = self.state / "server-env"
        python = env / "bin" / "python"
        if not python.exists():
            log(f"a view of {here} other users may run: {env}")
            run([str(base), "-m", "venv", "--without-pip", str(env)])
        purelib = Path(sysconfig.get_paths()["purelib"])
        view_site = env / purelib.relative_to(here)
        (view_site / "classroom_view.pth").write_text(
            f"import site; site.addsitedir({str(purelib)!r})  # deploy/jupyterhub/classroom.py\n")
        for folder in ("share", "etc"):
            link = env / folder
            if link.is_symlink() or link.exists():
                if link.is_symlink():
                    link.unlink()
                else:
                    shutil.rmtree(link)
            if (here / folder).exists():
                link.symlink_to(here / folder)
        shebang = f"#!{here / 'bin' / 'python'}"
        for script in (here / "bin").iterdir():
            if script.is_symlink() or not script.is_file() or script.name.startswith(("python", "activate")):
                continue
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            if text.startswith(shebang):
                target = env / "bin" / script.name
                target.write_text(f"#!{python}" + text[len(shebang):])
                target.chmod(0o755)
        try:
            self._run_as(self.student_names[0], str(python), "-c", "import jupyterhub, nbgrader, fr_utils")
        except ClassroomError as error:
            raise ClassroomError(f"the servers' environment {env} does not run as a student: {error}") from None
        return env / "bin"

    def _base_python(self, log) -> Path:
        """This script's Python, or a copy of it that every user may run."""
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        base = Path(sys.base_prefix)
        if searchable_by_all(base):
            return base / "bin" / version
        # e.g. pyenv's Python under /root (mode 700): copy it where everyone may
        # read it, and point its executable at the copy's libpython.
        copy = self.state / "python"
        python = copy / "bin" / version
        if not python.exists():
            log(f"{base} is private to root: copying its Python to {copy} ...")
            skip_stdlib = {"test", "idlelib", "tkinter", "turtledemo"}
            site = base / "lib" / version / "site-packages"

            def ignore(folder, names):
                folder = Path(folder)
                if folder == site:  # only pip and setuptools: the packages come from requirements.txt
                    return [n for n in names if not n.startswith(("pip", "setuptools", "wheel", "_distutils"))]
                return [n for n in names if n in skip_stdlib] if folder == site.parent else []

            shutil.copytree(base, copy, symlinks=True, ignore=ignore)
            if (copy / "lib" / f"lib{version}.so.1.0").exists():
                if shutil.which("patchelf") is None:
                    raise ClassroomError(
                        "patchelf is needed to relocate the copied Python "
                        "(Debian package patchelf, listed in system-packages.txt)")
                run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(python.resolve())])
            run(["chmod", "-R", "a+rX", str(copy)])
        return python

    def _course(self, reset: bool, log) -> None:
        """The instructor's course folder: a copy of the repository's course side."""
        user = pwd.getpwnam(self.instructor)
        if not self.course.exists():
            self.course.mkdir()
            for name in COURSE_SIDE:
                src = REPO / name
                if src.is_dir():
                    shutil.copytree(src, self.course / name, ignore=shutil.ignore_patterns(
                        ".ipynb_checkpoints", "__pycache__"))
                elif src.exists():
                    shutil.copy2(src, self.course / name)
                elif name != "grader":  # grader/ lands with the sandboxed autograder
                    raise ClassroomError(f"course side incomplete: {src} not found")
            with open(self.course / "nbgrader_config.py", "a", encoding="utf-8") as cfg:
                cfg.write(
                    "\n\n# --- added by deploy/jupyterhub/classroom.py: this copy is the hub's course ---\n"
                    f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
                    f"c.Exchange.root = {str(self.exchange)!r}\n"
                )
                if self.server_bin != Path(sys.prefix) / "bin":
                    # The servers' environment is a view of this one (see _server_env):
                    # the autograder's sandbox must let kernels read the packages it imports.
                    cfg.write(f"c.SandboxKernelManager.read_only_paths = [{sys.prefix!r}]\n")
            log(f"course copied to {self.course}")
        jupyter_dir = self.home(self.instructor) / ".jupyter"
        jupyter_dir.mkdir(exist_ok=True)
        # nbgrader's guide: the grader's own ~/.jupyter/nbgrader_config.py names the
        # course folder; the Formgrader (started in the home folder) then finds it.
        (jupyter_dir / "nbgrader_config.py").write_text(
            '"""Written by deploy/jupyterhub/classroom.py: the course this instructor grades."""\n'
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(self.course / 'nbgrader_config.py')!r})  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(self.course)!r}\n"
        )
        for path in [self.home(self.instructor), *self.home(self.instructor).rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)

    def _student_extensions(self, student: str) -> None:
        """Only the Assignment List for a student, per user as nbgrader's guide says."""
        entry = pwd.getpwnam(student)
        jupyter_dir = self.home(student) / ".jupyter"
        # `jupyter server extension disable --user <ext>` writes exactly this file, but
        # (jupyter_server 2.21, nbgrader 0.9.6) refuses nbgrader's extensions, failing
        # its validation with "could not be found" although they import; so write it.
        server_config = jupyter_dir / "jupyter_server_config.json"
        settings = json.loads(server_config.read_text()) if server_config.exists() else {}
        switches = settings.setdefault("ServerApp", {}).setdefault("jpserver_extensions", {})
        switches.update({ext: False for ext in STUDENT_OFF_SERVER})
        jupyter_dir.mkdir(exist_ok=True)
        server_config.write_text(json.dumps(settings, indent=2) + "\n")
        for path in (jupyter_dir, server_config):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        page_config = jupyter_dir / "labconfig" / "page_config.json"
        if page_config.exists() and all(ext in page_config.read_text() for ext in STUDENT_OFF_LAB):
            return
        self._run_as(student, str(self.server_bin / "jupyter"), "labextension", "disable",
                     "--level=user", *STUDENT_OFF_LAB)

    def _student_kernel(self, log) -> Path:
        """The students' ``python3`` kernel: the student environment's Python.

        The environment (``deploy/make_student_env.sh``: the fr_utils wheel,
        ipykernel, the weights; no solutions, no hidden tests) is built once in
        ``<state>/student-env`` and rebuilt when fr_utils or the pins change;
        ``student_env`` names an existing one instead.
        """
        env = self.student_env or self.state / "student-env"
        python = env / "bin" / "python"
        if self.student_env is None:
            stamp = env / "classroom-stamp.txt"
            wanted = digest([REPO / "requirements.txt", REPO / "pyproject.toml", STUDENT_ENV_SCRIPT,
                             *sorted((REPO / "fr_utils").rglob("*.py"))])
            if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
                if not STUDENT_ENV_SCRIPT.exists():
                    raise ClassroomError(f"{STUDENT_ENV_SCRIPT} not found: it builds the students' environment")
                log(f"building the student environment in {env} ({STUDENT_ENV_SCRIPT.name}, minutes the first time) ...")
                argv = ["bash", str(STUDENT_ENV_SCRIPT), str(env), "--python", str(self._base_python(log))]
                if self.weights_dir:
                    argv += ["--weights-from", str(self.weights_dir)]
                run(argv, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
                stamp.write_text(wanted)
        if not python.exists():
            raise ClassroomError(f"the student environment {env} has no {python}")
        try:
            self._run_as(self.student_names[0], str(python), "-c", "import fr_utils, ipykernel")
        except ClassroomError as error:
            raise ClassroomError(f"the student environment {env} does not run as a student: {error}") from None
        kernel = self.student_data_dir / "kernels" / "python3"
        kernel.mkdir(parents=True, exist_ok=True)
        (kernel / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (FaceNet course)",
            "language": "python",
            "metadata": {"debugger": True},
        }, indent=1) + "\n")
        for folder in (self.state / "share", self.student_data_dir, kernel.parent, kernel):
            folder.chmod(0o755)
        return python

    # -- start -----------------------------------------------------------------

    def hub_command(self) -> list[str]:
        # The hub runs as root, with the Python running this script.
        return [str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f", str(HERE / "jupyterhub_config.py")]

    def hub_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FR_CLASSROOM_SETTINGS"] = str(self.settings_file)
        env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def start(self, log_file=None) -> subprocess.Popen:
        """JupyterHub in its own process group; returns once it answers on its URL."""
        if not self.settings_file.exists():
            raise ClassroomError(f"{self.settings_file} not found: run `classroom.py setup` first")
        for port in (self.port, self.hub_port, self.proxy_api_port):
            if not port_free(port):
                raise ClassroomError(f"port 127.0.0.1:{port} is in use (another hub?); choose others with --port")
        hub = subprocess.Popen(
            self.hub_command(), env=self.hub_env(), cwd=self.hub_dir,
            stdout=log_file, stderr=subprocess.STDOUT if log_file else None,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if hub.poll() is not None:
                raise ClassroomError(f"jupyterhub exited with status {hub.returncode} while starting "
                                     "(its log says why)")
            try:
                with urllib.request.urlopen(self.url + "hub/api/", timeout=2) as answer:
                    if answer.status == 200:
                        return hub
            except OSError:
                time.sleep(0.5)
        stop(hub)
        raise ClassroomError(f"jupyterhub did not answer on {self.url} within 60 s")

    def banner(self) -> str:
        return "\n".join([
            f"JupyterHub for the FaceNet class: {self.url}",
            f"  instructor: {self.instructor} (Formgrader: Nbgrader menu > Formgrader)",
            f"  students:   {', '.join(self.student_names)} (Nbgrader menu > Assignment List)",
            f"  password (every user): {self.password()}",
            f"  state: {self.state}   stop: Ctrl-C",
        ])


def searchable_by_all(path: Path) -> bool:
    """Whether every user may reach ``path`` (each folder above it has o+x)."""
    return all(folder.stat().st_mode & 0o001 for folder in [path, *path.parents])


def digest(paths) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(str(path).encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return sha.hexdigest()


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ClassroomError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # as the hub and the proxy bind: a port in TIME_WAIT after the last run is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the hub (it stops the users' servers and the proxy), then its group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
    except ProcessLookupError:
        pass
    process.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup", "start", "run"],
                        help="setup: users, course, exchange; start: the hub; run: both")
    parser.add_argument("--state", type=Path, default=Classroom.state)
    parser.add_argument("--students", type=int, default=Classroom.students)
    parser.add_argument("--port", type=int, default=Classroom.port)
    parser.add_argument("--student-env", type=Path, default=None,
                        help="an existing student environment (default: built by deploy/make_student_env.sh)")
    parser.add_argument("--reset", action="store_true",
                        help="start the class afresh: empty homes, exchange and course copy")
    args = parser.parse_args(argv)
    if args.students < 1:
        parser.error(f"--students must be at least 1, not {args.students}")
    weights = os.environ.get("FR_WEIGHTS_DIR")
    room = Classroom(
        state=args.state.resolve(), students=args.students, port=args.port,
        hub_port=args.port + 81, proxy_api_port=args.port + 1,
        student_env=args.student_env, weights_dir=Path(weights).resolve() if weights else None,
    )
    try:
        if args.command in ("setup", "run"):
            room.setup(reset=args.reset)
        else:
            room = Classroom.load(args.state.resolve())
        if args.command in ("start", "run"):
            # SIGTERM / SIGHUP (a closed terminal) end here as Ctrl-C does: the hub and
            # every server it started are stopped, none is left behind.
            for signum in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, _interrupt)
            hub = room.start()
            print(room.banner(), flush=True)
            try:
                hub.wait()
            except KeyboardInterrupt:
                print("stopping the hub ...", flush=True)
            finally:
                stop(hub)
    except ClassroomError as error:
        print(f"classroom: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
