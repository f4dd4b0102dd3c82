"""Every submission's kernel runs inside a bubblewrap sandbox (issue #13).

The kernel is the student's code: whatever it can read, write or signal, a
submission can.  So nbgrader's kernel is started as::

    bwrap <an allow-listed, read-only view of the machine> \\
          --bind <scratch copy of the submission's folder> <that folder> \\
          --unshare-pid --unshare-net --unshare-ipc --unshare-uts --die-with-parent --new-session \\
      prlimit --as --nproc --fsize --cpu --nofile --core \\
      setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \\
      python -m ipykernel_launcher -f <connection file>

What the kernel sees:

* read-only: /usr (and the /bin, /lib... links), /etc, the Python installation
  (``sys.base_prefix``) and the virtual environment (``sys.prefix``), those of the
  kernel's own Python when its spec names another (a student environment), the
  package folders of :attr:`SandboxKernelManager.packages` (fr_utils), the
  weights folder, the course's cast when ``$FR_CAST_DIR`` puts it outside the
  package (the variable passed on as an absolute path);
* read-write: a *copy* of the folder nbgrader runs the notebook in (its
  notebooks left out: the graded copy holds the hidden tests), a fresh home
  folder, a private /tmp (a size-limited tmpfs), the folder holding the
  connection file and the ZeroMQ ``ipc`` sockets (the kernel has no network,
  so the grader talks to it through socket files, not TCP);
* nothing else: not the course root (instructor notebooks, gradebook.db,
  nbgrader_config.py, release/, submitted/, autograded/, feedback/, grader/,
  tests/), not the instructor's home.

It runs as the unprivileged ``nobody`` (65534) with no capabilities, so even a
mistake in that list leaves the files owned by the instructor read-only, and
RLIMIT_NPROC (which counts processes per real uid) means something.  (An
instructor who is not root gets a user namespace instead, uid 65534 inside
mapped to theirs outside: the mounts still hide the course, but RLIMIT_NPROC
then counts the instructor's own processes too.)  Its own
PID namespace: its parent is the sandbox's init, owned by root, so
``os.kill(os.getppid(), ...)`` fails with EPERM and the grader is out of sight.

:func:`sandbox_problem` runs bwrap once to check it works; the autograder
(grader.execute.SandboxedExecute) refuses to grade when it does not, unless
the instructor sets ``FR_GRADER_UNSANDBOXED=1``.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, List, Unicode, default

NOBODY = 65534
BWRAP = "bwrap"
UNSANDBOXED_ENV = "FR_GRADER_UNSANDBOXED"

# The environment variables a kernel keeps (everything else is dropped: the
# instructor's tokens, JPY_PARENT_PID whose process is out of the kernel's sight...).
KEPT_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "OMP_NUM_THREADS",
            "MPLBACKEND", "CUDA_VISIBLE_DEVICES")
KEPT_ENV_PREFIXES = ("FR_", "TF_", "NBGRADER_", "KERAS_")

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
HOME_IN_SANDBOX = "/home/student"


class SandboxError(RuntimeError):
    """The sandbox cannot be built or run."""


def _existing(paths) -> list[str]:
    seen, out = set(), []
    for path in paths:
        if not path:
            continue
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in seen:
            seen.add(real)
            out.append(real)
    return out


def package_dirs(names) -> list[str]:
    """The folders the kernel imports these packages from (as this process would find them)."""
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise SandboxError(f"package {name!r}, which the sandboxed kernel needs, is not importable here")
        found += list(spec.submodule_search_locations or [os.path.dirname(spec.origin)])
    return _existing(found)


def interpreter_dirs(executable: str) -> list[str]:
    """What the kernel's Python needs: its virtual environment (if it is one) and its installation."""
    found = shutil.which(executable) or executable
    paths = []
    env_root = Path(found).parent.parent
    config = env_root / "pyvenv.cfg"
    if config.is_file():
        paths.append(str(env_root))
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                paths.append(str(Path(value.strip()).parent))
    paths.append(str(Path(os.path.realpath(found)).parent.parent))
    return _existing(paths)


def weights_folder() -> str | None:
    """The folder holding the encoder's weights, as the grader finds them (None: none built)."""
    try:
        from fr_utils import weights
    except Exception:  # noqa: BLE001 - no fr_utils: nothing to expose
        return os.environ.get("FR_WEIGHTS_DIR")
    for name in ("find_weights_dir", "weights_dir"):
        try:
            return str(getattr(weights, name)())
        except Exception:  # noqa: BLE001 - not built yet, or an older fr_utils
            continue
    return os.environ.get("FR_WEIGHTS_DIR")


def cast_folder() -> str | None:
    """The course's cast when configured outside the package (``$FR_CAST_DIR``), as a real
    absolute path; None for the shipped cast, or when the setting names no folder (the
    kernel then refuses it with fr_utils.data's message)."""
    try:
        from fr_utils.data import CAST_ENV, people_dir

        return os.path.realpath(people_dir()) if os.environ.get(CAST_ENV, "").strip() else None
    except Exception:  # noqa: BLE001 - no fr_utils, or a bad setting: nothing to expose
        return None


def resource_dirs() -> list[str]:
    """fr_utils's data outside the package: the weights folder, the configured cast and (older
    layouts) ``images/``."""
    paths = [weights_folder() or "", cast_folder() or ""]
    for package in package_dirs(["fr_utils"]):
        paths.append(os.path.join(os.path.dirname(package), "images"))
    return _existing(paths)


def matplotlib_font_cache() -> list[str]:
    """matplotlib's font list from the grader's own cache (saves every kernel ~1 s of font scanning)."""
    try:
        import matplotlib

        return sorted(glob.glob(os.path.join(matplotlib.get_cachedir(), "fontlist-*.json")))
    except Exception:  # noqa: BLE001 - no cache: each kernel builds its own
        return []


def bwrap_command(
    command: list[str],
    *,
    workdir: str,
    scratch_work: str,
    scratch_home: str,
    runtime_dir: str,
    read_only: list[str],
    memory_bytes: int,
    processes: int,
    file_bytes: int,
    cpu_seconds: int,
    tmp_bytes: int,
) -> list[str]:
    """``command`` wrapped in bwrap + prlimit + setpriv (see the module's docstring)."""
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: `make setup` installs it (system-packages.txt)")
    args = [bwrap]
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    mounted = [path for path in SYSTEM_DIRS if os.path.exists(path)] + ["/proc", "/dev"]  # no --dir inside
    created = {"/", "/tmp"}

    def mount(option: str, source: str, target: str) -> None:
        # bwrap would create the missing folders above ``target`` as 0700 root: nobody could reach the mount.
        for parent in reversed(Path(target).parents):
            parent = str(parent)
            if parent not in created and not any(parent == m or parent.startswith(m + "/") for m in mounted):
                args.extend(["--perms", "0755", "--dir", parent])
                created.add(parent)
        args.extend([option, source, target])
        mounted.append(target)

    for path in read_only:
        mount("--ro-bind", path, path)
    mount("--bind", scratch_work, workdir)
    mount("--bind", scratch_home, HOME_IN_SANDBOX)
    mount("--bind", runtime_dir, runtime_dir)
    args += [
        "--chdir", workdir,
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session",
    ]
    if os.geteuid() != 0:
        # An instructor who is not root: a user namespace maps the instructor's uid to 65534 inside.
        args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    args += [
        "prlimit",
        f"--as={memory_bytes}", f"--nproc={processes}", f"--fsize={file_bytes}",
        f"--cpu={cpu_seconds}", "--nofile=1024", "--core=0", "--",
    ]
    if os.geteuid() == 0:
        # Root: switch to the real unprivileged uid, so RLIMIT_NPROC counts only sandboxes and
        # the instructor's files (owned by root) stay read-only whatever is mounted.
        args += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    args += [
        # jupyter_client's launcher sets JPY_PARENT_PID to a pid outside the sandbox's PID namespace,
        # which ipykernel would take for a dead parent and exit.  1 means "no parent to watch".
        "env", "JPY_PARENT_PID=1",
        *command,
    ]
    return args


def sandbox_env(env: dict[str, str]) -> dict[str, str]:
    """The kernel's environment: a few kept variables, a PATH into the venv, HOME in the scratch."""
    kept = {
        key: value for key, value in env.items()
        if key in KEPT_ENV or key.startswith(KEPT_ENV_PREFIXES)
    }
    kept.update(
        PATH=os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        HOME=HOME_IN_SANDBOX,
        USER="nobody",
        TMPDIR="/tmp",
        MPLBACKEND=env.get("MPLBACKEND", "Agg"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    kept.setdefault("LANG", "C.UTF-8")
    return kept


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _live_pids_in(namespace: str) -> list[int]:
    """The processes (zombies left out) of a PID namespace, as seen from here."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_namespace(int(entry)) == namespace:
            try:
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                found.append(int(entry))
    return found


def _child_namespace(parent: int, timeout: float = 5.0) -> str | None:
    """The PID namespace bwrap (``parent``) made: its child's, once that child exists."""
    own = _pid_namespace(os.getpid())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            namespace = _pid_namespace(int(entry))
            if ppid == parent and namespace and namespace != own:
                return namespace
        time.sleep(0.02)
    return None


def _chown_tree(path: str) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, NOBODY, NOBODY)
        for name in files:
            os.chown(os.path.join(root, name), NOBODY, NOBODY, follow_symlinks=False)


@functools.lru_cache(maxsize=None)
def sandbox_problem() -> str | None:
    """Why the sandbox cannot run here (None: it works).  Checked once per process, by running it."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap (bwrap) is not installed (`make setup` installs what system-packages.txt lists)"
    scratch = tempfile.mkdtemp(prefix="fr-sandbox-check-")
    try:
        dirs = {name: os.path.join(scratch, name) for name in ("work", "home", "run")}
        for path in dirs.values():
            os.mkdir(path)
        _chown_tree(scratch)
        command = bwrap_command(
            [sys.executable, "-c", "import os, sys; sys.stdout.write(str(os.getuid()))"],
            workdir=dirs["work"], scratch_work=dirs["work"], scratch_home=dirs["home"], runtime_dir=dirs["run"],
            read_only=_existing([sys.base_prefix, sys.prefix]),
            memory_bytes=2 << 30, processes=64, file_bytes=1 << 20, cpu_seconds=30, tmp_bytes=1 << 20,
        )
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=sandbox_env({}))
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"running bwrap failed: {error}"
        if done.returncode != 0 or done.stdout.strip() != str(NOBODY):
            return (f"a test run of the sandbox failed (exit {done.returncode}): "
                    f"{(done.stderr or done.stdout).strip()[-500:]}")
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs in bubblewrap, on ``ipc`` sockets, in a scratch copy of its folder.

    Limits (traits, e.g. ``c.SandboxKernelManager.memory_bytes``) apply to each process of the kernel.
    """

    memory_bytes = Integer(
        8 << 30, help="RLIMIT_AS of the kernel (bytes of address space). TensorFlow + the encoder "
        "reserve about 4 GiB of address space for 2.7 GiB resident; 8 GiB leaves room."
    ).tag(config=True)
    processes = Integer(
        512, help="RLIMIT_NPROC: processes and threads of uid 65534 (all sandboxes together)."
    ).tag(config=True)
    file_bytes = Integer(256 << 20, help="RLIMIT_FSIZE: the largest file the kernel may write.").tag(config=True)
    cpu_seconds = Integer(
        1800, help="RLIMIT_CPU: CPU seconds of one kernel process (all its threads); then it is killed."
    ).tag(config=True)
    tmp_bytes = Integer(256 << 20, help="Size of the kernel's private /tmp (tmpfs).").tag(config=True)
    packages = List(
        Unicode(), ["fr_utils"], help="Packages whose folders the kernel may read (besides the venv)."
    ).tag(config=True)
    read_only_paths = List(
        Unicode(), [], help="More paths the kernel may read (data an assignment needs)."
    ).tag(config=True)
    scratch_root = Unicode(
        "", help="Where the per-kernel scratch folders go (default: the system's temporary folder)."
    ).tag(config=True)

    @default("transport")
    def _default_transport(self):
        return "ipc"

    _scratch: str | None = None

    # -- the scratch folder ----------------------------------------------------

    def _make_scratch(self, workdir: str) -> None:
        self._scratch = tempfile.mkdtemp(prefix="fr-sandbox-", dir=self.scratch_root or None)
        os.chmod(self._scratch, 0o711)
        work, home, run = (os.path.join(self._scratch, name) for name in ("work", "home", "run"))
        # The submission's own files, without notebooks: the graded copy nbgrader runs holds the hidden tests.
        shutil.copytree(workdir, work, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"),
                        symlinks=True)
        fonts = os.path.join(home, ".cache", "matplotlib")
        os.makedirs(fonts)
        for path in matplotlib_font_cache():
            shutil.copy(path, fonts)
        os.mkdir(run, 0o700)
        _chown_tree(self._scratch)
        if os.geteuid() == 0:  # an instructor who is not root (a hub) keeps it: a user namespace maps it
            os.chown(self._scratch, 0, 0)
        self.connection_file = os.path.join(run, "kernel.json")
        self.ip = os.path.join(run, "kernel-ipc")

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self._scratch and os.geteuid() == 0 and os.path.exists(self.connection_file):
            os.chown(self.connection_file, NOBODY, NOBODY)

    async def _async_pre_start_kernel(self, **kw):
        workdir = os.path.realpath(kw.get("cwd") or os.getcwd())
        if self._scratch is None:  # a restart keeps the scratch folder (and what the kernel wrote there)
            self._make_scratch(workdir)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        scratch = self._scratch
        read_only = _existing(
            [sys.base_prefix, sys.prefix, *interpreter_dirs(kernel_cmd[0]), *package_dirs(self.packages),
             *resource_dirs(), *self.read_only_paths]
        )
        wrapped = bwrap_command(
            kernel_cmd,
            workdir=workdir,
            scratch_work=os.path.join(scratch, "work"),
            scratch_home=os.path.join(scratch, "home"),
            runtime_dir=os.path.join(scratch, "run"),
            read_only=read_only,
            memory_bytes=self.memory_bytes,
            processes=self.processes,
            file_bytes=self.file_bytes,
            cpu_seconds=self.cpu_seconds,
            tmp_bytes=self.tmp_bytes,
        )
        kw["env"] = sandbox_env(kw.get("env") or dict(os.environ))
        # The kernel's HOME is the scratch one: point it at the weights the grader found (read-only
        # above), unless the kernel's spec says where (an empty value too: "find your own").
        weights = weights_folder()
        if weights and os.path.isdir(weights):
            kw["env"].setdefault("FR_WEIGHTS_DIR", os.path.realpath(weights))
        cast = cast_folder()
        if cast:  # mounted read-only above; the kernel's cwd is the scratch, so a relative setting would miss
            kw["env"]["FR_CAST_DIR"] = cast
        kw["cwd"] = self._scratch
        self.log.debug("Sandboxed kernel: %s", wrapped)
        return wrapped, kw

    pre_start_kernel = _async_pre_start_kernel

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        process = getattr(self.provisioner, "process", None)
        self._namespace = _child_namespace(process.pid) if process is not None else None

    _launch_kernel = _async_launch_kernel

    async def _async_reap_sandbox(self, timeout: float = 30.0) -> None:
        """Kill and wait for whatever is left in the kernel's PID namespace.

        jupyter_client sees the kernel gone as soon as the outer bwrap is; the namespace's
        processes (a fork bomb's hundreds) die a moment later.  Until they have, they count
        against RLIMIT_NPROC and the next kernel could not start."""
        namespace, self._namespace = getattr(self, "_namespace", None), None
        if not namespace:
            return
        deadline = time.monotonic() + timeout
        while (pids := _live_pids_in(namespace)) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            await asyncio.sleep(0.05)
        if pids:
            self.log.warning("%d processes of a stopped sandbox are still alive", len(pids))

    async def _async_interrupt_kernel(self) -> None:
        # The kernel sits in its own session (--new-session): a SIGINT to the launcher's process group would
        # reach bwrap, not the kernel.  The kernel interrupts itself on an interrupt_request instead.
        if self.has_kernel:
            msg = self.session.msg("interrupt_request", content={})
            self._connect_control_socket()
            self.session.send(self._control_socket, msg)

    interrupt_kernel = _async_interrupt_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        await self._async_reap_sandbox()
        if not restart and self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    cleanup_resources = _async_cleanup_resources
