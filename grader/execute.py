"""nbgrader's Execute step with limits student code cannot swallow (issue #13).

``SandboxedExecute`` replaces nbgrader's ``Execute`` in ``Autograde.autograde_preprocessors``:

* the kernel runs in bubblewrap (:class:`grader.sandbox.SandboxKernelManager`); grading
  stops with a clear error when the sandbox does not work here, unless the instructor
  sets ``FR_GRADER_UNSANDBOXED=1`` (then the log says the kernels run with the
  instructor's rights);
* time limits are enforced from the grader's process: when a cell passes
  ``Execute.timeout`` (or the notebook passes ``notebook_timeout``) the kernel is asked
  to interrupt itself; if it is still busy ``interrupt_grace`` seconds later (a bare
  ``except:`` swallowed the KeyboardInterrupt) it is killed and restarted, the cells
  before the stuck one are run again silently to rebuild its state, the stuck cell is
  marked failed with a message saying why, and grading goes on with the next cell.
  A kernel that dies (memory, CPU time, a signal to itself) is handled the same way;
* each cell's output is bounded (``output_bytes``, 1 MB): what comes after is dropped
  as it arrives, with a visible "output truncated" note; error outputs are always kept
  (nbgrader needs them to mark a cell failed), their text shortened.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
from time import monotonic

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from .records import is_record
from .sandbox import UNSANDBOXED_ENV, SandboxKernelManager, sandbox_problem

TRUNCATED_NOTE = "\n[output truncated: this cell's output passed {limit:,} characters; the grader dropped the rest]\n"


class SandboxUnavailable(RuntimeError):
    """The sandbox does not work here and the instructor did not ask to grade without it."""


def _size(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    return len(str(value))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit:,} characters dropped]"


def _error_output(ename: str, message: str):
    return new_output("error", ename=ename, evalue=message, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])


class SandboxedExecute(Execute):
    """nbgrader's Execute, sandboxed, with outside-the-kernel time limits and bounded output."""

    notebook_timeout = Integer(
        1800, help="Seconds one notebook may run in all (cells, restarts and re-runs included)."
    ).tag(config=True)
    interrupt_grace = Integer(
        5, help="Seconds a timed-out kernel has to answer an interrupt before it is killed and restarted."
    ).tag(config=True)
    output_bytes = Integer(
        1_000_000, help="Characters of output kept per cell; the rest is dropped with a visible note."
    ).tag(config=True)
    # After the kernel's reply, wait this long for the cell's last outputs and do not fail the
    # notebook if they are late (an output flood made nbgrader drop a correct submission).
    iopub_timeout = Integer(30).tag(config=True)
    raise_on_iopub_timeout = Bool(False).tag(config=True)

    def __init__(self, **kwargs):
        self.unsandboxed = os.environ.get(UNSANDBOXED_ENV, "") == "1"
        if not self.unsandboxed:
            kwargs["kernel_manager_class"] = SandboxKernelManager
        super().__init__(**kwargs)

    # -- the whole notebook ----------------------------------------------------

    def preprocess(self, nb, resources=None, km=None):
        if self.unsandboxed:
            self.log.warning(
                "Grading WITHOUT the sandbox because %s=1: this submission's code runs with your rights "
                "(it can read the gradebook and the instructor notebooks, and write anywhere you can).",
                UNSANDBOXED_ENV,
            )
        else:
            problem = sandbox_problem()
            if problem:
                raise SandboxUnavailable(
                    f"Refusing to run submissions outside the sandbox: {problem}. Fix it, or set "
                    f"{UNSANDBOXED_ENV}=1 to grade with your own rights (only for code you trust)."
                )
        self._deadline: float | None = None  # set when the first cell starts: the kernel's start-up is not the submission's time
        self._done: list[int] = []  # cells whose effects a restarted kernel must get back
        self._output_used: dict[int, int] = {}
        self._records_used: dict[int, int] = {}
        self._truncated: set[int] = set()
        self._kernel_lost: str | None = None
        return super().preprocess(nb, resources, km)

    def _get_timeout(self, cell):
        limit = super()._get_timeout(cell)
        if self._deadline is None:  # not a graded cell's run (the notebook's clock has not started)
            return limit
        remaining = max(1, math.ceil(self._deadline - monotonic()))
        return remaining if limit is None else min(limit, remaining)

    async def _async_handle_timeout(self, timeout, cell=None):
        # Never interrupt from inside nbclient's wait: the kernel may swallow it and nbclient would
        # then wait for output that never ends.  preprocess_cell decides (interrupt, then kill).
        raise CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", timeout, cell)

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        # nbclient leaves this task running when a cell times out (CellTimeoutError is a "control
        # signal" it does not cancel on): remember it, so that it cannot steal the next kernel's messages.
        self._output_task = asyncio.current_task()
        return await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)

    async def _async_stop_output_task(self, wait: float = 0) -> None:
        task, self._output_task = getattr(self, "_output_task", None), None
        if task is None or task.done():
            return
        if wait:
            try:
                await asyncio.wait_for(asyncio.shield(task), wait)
                return
            except Exception:  # noqa: BLE001 - late or failed: cancelled below
                pass
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: BLE001 - CancelledError or what the task raised
            pass

    # -- one cell ----------------------------------------------------------------

    def preprocess_cell(self, cell, resources, index):
        self._check_assign_resources(resources)
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, self.resources
        if self._kernel_lost:
            cell.outputs = [_error_output("KernelLost", self._kernel_lost)]
            return cell, self.resources
        if self._deadline is None:
            self._deadline = monotonic() + self.notebook_timeout
        if monotonic() >= self._deadline:
            cell.outputs = [_error_output(
                "NotebookTimeLimit",
                f"not run: the notebook used up its time limit of {self.notebook_timeout} s",
            )]
            return cell, self.resources
        self._output_used[index] = 0
        self._records_used[index] = 0
        self._truncated.discard(index)
        started = monotonic()
        try:
            cell = self.execute_cell(cell, index, store_history=True)
        except CellTimeoutError:
            seconds = monotonic() - started
            whose = ("the notebook's time limit" if monotonic() >= self._deadline - 1
                     else f"the {self.timeout} s limit per cell")
            if run_sync(self._async_interrupted)():
                message = (f"this cell ran for {seconds:.0f} s, past {whose}, and was interrupted; "
                           "grading went on with the next cell")
            else:
                message = (f"this cell ran for {seconds:.0f} s, past {whose}, and ignored the interrupt; "
                           "the grader stopped its kernel, restarted it, re-ran the cells before this one "
                           "and went on with the next cell")
                self._restart_and_replay(index)
            self.log.error("Cell %d: %s", index, message)
            cell.outputs = [*cell.get("outputs", [])[:5], _error_output("CellTimeoutError", message)]
            self.nb.cells[index] = cell
            return cell, self.resources
        except DeadKernelError:
            message = ("the kernel died while running this cell (it ran out of memory or CPU time, or was "
                       "killed); the grader restarted it, re-ran the cells before this one and went on")
            self.log.error("Cell %d: %s", index, message)
            self._restart_and_replay(index)
            cell.outputs = [*cell.get("outputs", [])[:5], _error_output("DeadKernelError", message)]
            self.nb.cells[index] = cell
            return cell, self.resources
        self._done.append(index)
        return cell, self.resources

    async def _async_interrupted(self) -> bool:
        """Ask the kernel to interrupt itself; True when it is idle again within the grace period."""
        try:
            await ensure_async(self.km.interrupt_kernel())
        except Exception as error:  # noqa: BLE001 - a dead kernel cannot be interrupted
            self.log.warning("Interrupting the kernel failed: %s", error)
            return False
        deadline = monotonic() + self.interrupt_grace
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Exception:  # noqa: BLE001 - queue.Empty: no reply in time
                return False
            if msg.get("msg_type") == "execute_reply":
                await self._async_stop_output_task(wait=2)
                return True
        return False

    def _restart_and_replay(self, index: int) -> None:
        try:
            run_sync(self._async_restart_and_replay)(index)
        except Exception as error:  # noqa: BLE001 - whatever went wrong, the rest cannot run on this kernel
            self._kernel_lost = (f"not run: the kernel could not be brought back after cell {index} "
                                 f"({type(error).__name__}: {error})")
            self.log.error("%s", self._kernel_lost)

    async def _async_restart_and_replay(self, index: int) -> None:
        self.log.warning("Restarting the kernel and re-running %d cells before cell %d", len(self._done), index)
        await self._async_stop_output_task()
        await ensure_async(self.km.restart_kernel(now=True))
        await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        for done in self._done:
            original = self.nb.cells[done]
            clone = copy.deepcopy(original)
            self._output_used[done] = 0
            self._records_used[done] = 0
            self._truncated.discard(done)
            try:
                await self.async_execute_cell(clone, done, store_history=False)
            finally:
                self.nb.cells[done] = original

    # -- bounded output ----------------------------------------------------------

    def output(self, outs, msg, display_id, cell_index):
        kind = msg["msg_type"]
        content = msg["content"]
        limit = self.output_bytes
        if kind == "error":  # always kept: nbgrader marks a cell failed by its error output
            content["evalue"] = _shorten(str(content.get("evalue", "")), limit // 10)
            traceback, kept = [], 0
            for line in content.get("traceback", []):
                line = _shorten(line, limit // 10)
                if kept + len(line) > limit // 2:
                    traceback.append("... [traceback truncated]")
                    break
                traceback.append(line)
                kept += len(line)
            content["traceback"] = traceback
            return super().output(outs, msg, display_id, cell_index)
        size = _size(content.get("text", "")) if kind == "stream" else _size(content.get("data", {}))
        if is_record({"output_type": kind, "data": content.get("data", {})}):
            # Grading records have a budget of their own: a correct function that prints a
            # lot must not lose the records its cell is judged on (grader.decide).
            used = self._records_used.get(cell_index, 0)
            if used + size <= limit:
                self._records_used[cell_index] = used + size
                return super().output(outs, msg, display_id, cell_index)
            return None  # a flood of records: the cell fails on the missing ones
        used = self._output_used.get(cell_index, 0)
        if used + size <= limit:
            self._output_used[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)
        out = None
        if kind == "stream" and used < limit:
            content["text"] = content["text"][: limit - used]
            out = super().output(outs, msg, display_id, cell_index)
        self._output_used[cell_index] = limit
        if cell_index not in self._truncated:
            self._truncated.add(cell_index)
            # stdout: nbgrader gives 0 to a graded cell with any stderr output
            outs.append(new_output("stream", name="stdout", text=TRUNCATED_NOTE.format(limit=limit)))
        return out
