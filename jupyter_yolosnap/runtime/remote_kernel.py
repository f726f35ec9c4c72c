"""An IPython kernel inside a snapshot's container, bridged into this notebook the way ipyparallel's ``%%px`` is.

The container runs with no network: the kernel's ZeroMQ sockets are Unix sockets (``transport: "ipc"``) in a
short host folder bind-mounted at the same absolute path, so this process connects to them directly. The
kernel is PID 1 of its container, so an interrupt is a ``SIGINT`` sent by the engine; ipykernel turns it into
``KeyboardInterrupt`` in the running cell and the kernel keeps its state.
"""
from __future__ import annotations

import ast
import base64
import io
import os
import pickle
import queue
import secrets
import shutil
import sys
import time
from typing import Any, Iterable

from ..engine.client import explain
from .containers import ContainerSpec, create, exit_reason, last_log_line, make_scratch, remove_quietly
from ..exceptions import KernelDied, RemoteError, RuntimeFailure, VariableError
from ..bake.kernel_layer import KernelImage

# argv: python -c BOOT <folder to append to sys.path, or ''> -f <connection file> ...  (see kernel_command)
BOOT = (
    "import sys\n"
    "if sys.path and sys.path[0] in ('', '.'): del sys.path[0]\n"  # as ipykernel_launcher: IPython adds cwd later
    "extra = sys.argv.pop(1)\n"
    "if extra: sys.path.append(extra)\n"  # at the END: the snapshot's own packages win
    "from ipykernel.kernelapp import launch_new_instance\n"
    "launch_new_instance()\n"
)


def kernel_command(kernel_path: str | None, connection_file: str) -> list[str]:
    """The command line of an IPython kernel in a snapshot's container, the one place it is built.

    ``kernel_path`` is the kernel layer's folder (``KernelImage.kernel_path``: appended to ``sys.path``; None when
    the snapshot has its own ipykernel); ``connection_file`` is the path the container sees. Used by ``%%in_env``'s
    warm kernels (:class:`RemoteKernel`) and by restored kernels (the kernelspec's provisioner). History stays in
    memory: the container's home is a throwaway ``/tmp``.
    """
    return ["python", "-c", BOOT, kernel_path or "", "-f", connection_file, "--HistoryManager.hist_file=:memory:"]


START_TIMEOUT = 60.0
ALIVE_CHECK_S = 1.0
PICKLE_PROTOCOL = 4  # every Python >= 3.9 reads it, whichever side is newer


class RemoteKernel:
    """One kernel container of one snapshot; ``execute`` forwards its output here as it arrives."""

    def __init__(self, client: Any, snapshot: str, image: KernelImage, spec: ContainerSpec,
                 owns_client: bool = False):
        self.client = client
        self.owns_client = owns_client  # close it at shutdown: docker-py keeps a connection per URL it used
        self.snapshot = snapshot
        self.image = image
        self.spec = spec
        self.container: Any = None
        self.kc: Any = None
        self.folder: str | None = None
        self.started_s: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> "RemoteKernel":
        """Start the container and return once the kernel answers (about a second)."""
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        began = time.perf_counter()
        self.folder = make_scratch()
        try:
            connection, _ = write_connection_file(os.path.join(self.folder, "kernel.json"), transport="ipc",
                                                  ip=os.path.join(self.folder, "k"),
                                                  key=secrets.token_hex(32).encode())
            self._share_with_container_user(connection)
            command = kernel_command(self.image.kernel_path, connection)
            self.spec.extra_mounts = {self.folder: {"bind": self.folder, "mode": "rw"}}
            self.spec.scratch = self.folder  # a sweep after a crash removes it with the container
            self.container = create(self.client, self.image.image, command, self.spec)
            self.kc = BlockingKernelClient(connection_file=connection)
            self.kc.load_connection_file()
            self.kc.start_channels()
            self._wait_ready(timeout)
        except BaseException:
            self.shutdown()
            raise
        self.started_s = time.perf_counter() - began
        return self

    def _share_with_container_user(self, connection: str) -> None:
        """The kernel runs as ``spec.user``; when that is not us (only root can ask), hand it the folder."""
        uid, _, gid = self.spec.user.partition(":")
        if uid.isdigit() and int(uid) != os.getuid():
            for path in (self.folder, connection):
                os.chown(path, int(uid), int(gid or uid))

    def _wait_ready(self, timeout: float) -> None:
        """kernel_info until a reply AND its iopub status arrive: then no output of the first cell is lost."""
        deadline = time.monotonic() + timeout
        while True:
            msg_id = self.kc.kernel_info()
            answered = False
            step_end = time.monotonic() + 1.0
            while time.monotonic() < step_end:
                self._check_alive("while starting", heartbeat=False)
                try:
                    if not answered:
                        reply = self.kc.get_shell_msg(timeout=0.05)
                        answered = reply["parent_header"].get("msg_id") == msg_id
                    else:
                        msg = self.kc.get_iopub_msg(timeout=0.05)
                        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status":
                            self._drain_iopub()
                            return
                except queue.Empty:
                    pass
            if time.monotonic() > deadline:
                raise KernelDied(f"the kernel of snapshot {self.snapshot!r} did not answer within {timeout:.0f} s "
                                 f"({last_log_line(self.container) or 'no output'}); it was stopped")

    def _drain_iopub(self) -> None:
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0.01)
            except queue.Empty:
                return

    def alive(self) -> bool:
        """Whether the kernel still runs. Its heartbeat (answered within the last second) says so without an
        engine call; only when the heartbeat is silent is the engine asked, and only its "gone" or "not
        running" ends the kernel: an engine that cannot answer right now (a 5xx, a dropped connection) is no
        proof of death, so the answer is then "keep waiting"."""
        if self.container is None:
            return False
        return self._heartbeat() or self._engine_says_running()

    def _heartbeat(self) -> bool:
        kc = self.kc
        return kc is not None and kc.hb_channel.is_beating()

    def _engine_says_running(self) -> bool:
        import docker
        import requests

        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return True  # unknown: the heartbeat or the next check will tell
        return self.container.status == "running"

    def _check_alive(self, doing: str, heartbeat: bool = True) -> None:
        """Raise ``KernelDied`` (kernel cleaned up) when the kernel is gone. While starting, the heartbeat proves
        nothing yet (it counts as beating until its first ping fails), so then the engine is asked directly."""
        if self.container is not None and (heartbeat and self._heartbeat() or self._engine_says_running()):
            return
        reason = exit_reason(self.container) if self.container is not None else "it was never started"
        tail = last_log_line(self.container) if self.container is not None else ""
        self.shutdown()
        raise KernelDied(f"the kernel of snapshot {self.snapshot!r} stopped {doing} ({reason}"
                         f"{'; last output: ' + tail if tail and doing == 'while starting' else ''}); "
                         "its variables are lost, the next cell starts a fresh kernel")

    def interrupt(self) -> None:
        """SIGINT to the kernel (PID 1 of the container): the running cell gets ``KeyboardInterrupt``."""
        import docker
        import requests

        try:
            self.container.kill(signal="SIGINT")
        except docker.errors.NotFound:
            pass  # gone: the next alive check says so
        except (docker.errors.APIError, requests.exceptions.RequestException) as err:
            if self.alive():
                raise explain(err, "interrupting the kernel") from None

    def shutdown(self) -> None:
        """Close the channels, remove the container and the socket folder; safe to call twice."""
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:  # broad on purpose: a teardown that must go on to remove the container
                pass
            self.kc = None
        if self.container is not None:
            remove_quietly(self.container)
            self.container = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        if self.owns_client:
            self.client.close()
            self.owns_client = False

    # --- execution -------------------------------------------------------------------------------------------
    def execute(self, code: str, silent: bool = False, user_expressions: dict[str, str] | None = None,
                forward: bool = True) -> dict:
        """Run ``code``; forward streams and displays; return the reply content; raise ``RemoteError`` on error.

        Ctrl-C while waiting interrupts the remote cell and keeps draining until it ends, then re-raises
        ``KeyboardInterrupt`` here, with the kernel (and its variables) intact.
        """
        if self.kc is None:
            raise KernelDied(f"the kernel of snapshot {self.snapshot!r} is stopped; the next cell starts a fresh one")
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent,
                                 user_expressions=user_expressions or {}, allow_stdin=False)
        reply: dict | None = None
        idle = False
        error: dict | None = None
        interrupts = 0
        last_check = time.monotonic()
        while not (idle and reply is not None):
            try:
                try:
                    if not idle:
                        msg = self.kc.get_iopub_msg(timeout=0.2)
                        if msg["parent_header"].get("msg_id") != msg_id:
                            continue
                        kind, content = msg["msg_type"], msg["content"]
                        if kind == "status" and content.get("execution_state") == "idle":
                            idle = True
                        elif kind == "error":
                            error = content
                        elif forward:
                            forward_message(kind, content)
                    else:
                        msg = self.kc.get_shell_msg(timeout=0.2)
                        if msg["parent_header"].get("msg_id") == msg_id:
                            reply = msg["content"]
                except queue.Empty:
                    pass
                if time.monotonic() - last_check > ALIVE_CHECK_S:
                    last_check = time.monotonic()
                    self._check_alive("during the cell")
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 3:
                    self.shutdown()
                    raise KernelDied(f"the cell in snapshot {self.snapshot!r} ignored 3 interrupts; its kernel was "
                                     "stopped, the next cell starts a fresh one") from None
                self.interrupt()
        if interrupts:
            raise KeyboardInterrupt
        if reply.get("status") == "error" or error is not None:
            content = error or reply
            raise RemoteError(content.get("ename", "Error"), content.get("evalue", ""),
                              content.get("traceback") or [], self.snapshot)
        return reply

    def push(self, values: dict[str, Any]) -> None:
        """Assign ``values`` in the remote user namespace (pickled, one silent cell)."""
        if not values:
            return
        blobs = {}
        for name, value in values.items():
            try:
                blobs[name] = pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            except Exception as err:  # broad on purpose: a user object's __reduce__ may raise anything
                raise VariableError(f"cannot push {name!r}: a {type(value).__name__} cannot be pickled "
                                    f"({_one_line(err)})") from None
        payload = base64.b64encode(pickle.dumps(blobs, protocol=PICKLE_PROTOCOL)).decode("ascii")
        code = ("globals().update({_k: __import__('pickle').loads(_v) for _k, _v in "
                f"__import__('pickle').loads(__import__('base64').b64decode('{payload}')).items()}})")
        try:
            self.execute(code, silent=True, forward=False)
        except RemoteError as err:
            raise VariableError(f"cannot push {', '.join(values)}: unpickling in snapshot {self.snapshot!r} failed "
                                f"({err.ename}: {_one_line(err.evalue)}); the class must be importable there"
                                ) from None

    @staticmethod
    def pull_expressions(names: Iterable[str]) -> dict[str, str]:
        """``user_expressions`` that return each variable pickled and base64-encoded (no output, no history)."""
        for name in names:
            check_identifier(name, "pull")
        return {name: f"__import__('base64').b64encode(__import__('pickle').dumps({name}, protocol="
                      f"{PICKLE_PROTOCOL})).decode('ascii')" for name in names}

    def unpack_pulled(self, reply: dict, names: Iterable[str], trusted: bool = False) -> dict[str, Any]:
        """The pulled values from an execute reply; the first that failed raises ``PartialPull`` (with the rest).

        The bytes come from the container, and a container of a pulled image may run anything: unpickling them
        as they are could run any code here. So only plain data is unpickled (:class:`SafeUnpickler`) unless
        ``trusted`` (``--pull-trusted``) says the snapshot is trusted with arbitrary objects.
        """
        results = reply.get("user_expressions") or {}
        values: dict[str, Any] = {}
        problem = None
        for name in names:
            result = results.get(name) or {}
            if result.get("status") != "ok":
                ename, evalue = result.get("ename", "Error"), _one_line(result.get("evalue", "no result"))
                if ename == "NameError" and problem is None:
                    problem = f"cannot pull {name!r}: snapshot {self.snapshot!r}'s kernel has no variable {name!r}"
                elif problem is None:
                    problem = f"cannot pull {name!r}: it cannot be pickled in snapshot {self.snapshot!r} " \
                              f"({ename}: {evalue})"
                continue
            try:
                data = base64.b64decode(ast.literal_eval(result["data"]["text/plain"]))
                values[name] = pickle.loads(data) if trusted else SafeUnpickler(io.BytesIO(data)).load()
            except NotPlainData as refused:
                if problem is None:
                    problem = (f"cannot pull {name!r}: it holds a {refused.qualname}, and --pull only unpickles plain "
                               "data (builtins, collections, datetime, decimal, fractions, numpy arrays) from a "
                               "container; pass --pull-trusted to unpickle arbitrary objects from a snapshot you "
                               "trust")
            except Exception as err:  # broad on purpose: unpickling runs a class's own code
                if problem is None:
                    problem = (f"cannot pull {name!r}: unpickling it here failed ({type(err).__name__}: "
                               f"{_one_line(err)}); its class must be importable in this notebook")
        if problem:
            raise PartialPull(problem, values)
        return values

    def run_cell(self, code: str, push: dict[str, Any] | None = None, pull: Iterable[str] = (),
                 trusted: bool = False) -> dict[str, Any]:
        """Push, run the cell (output forwarded), and return the pulled variables (``trusted``: any object)."""
        names = list(pull)
        expressions = self.pull_expressions(names)
        self.push(push or {})
        reply = self.execute(code, user_expressions=expressions)
        return self.unpack_pulled(reply, names, trusted)


#: What ``--pull`` may rebuild from a container's pickle: containers and scalars, and numpy arrays (whose
#: object-dtype items pass through this same list). Anything else (``os.system``, an arbitrary class whose
#: ``__reduce__`` calls something) is refused before it is imported.
PLAIN_DATA = frozenset(
    [("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "int", "float",
                               "complex", "bool", "bytearray", "slice", "range")]
    + [("collections", n) for n in ("OrderedDict", "defaultdict", "deque", "Counter")]
    + [("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")]
    + [("decimal", "Decimal"), ("fractions", "Fraction"), ("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"numpy.{core}.multiarray", n) for core in ("core", "_core") for n in ("_reconstruct", "scalar")])


class NotPlainData(pickle.UnpicklingError):
    """A pickle from a container names a global outside ``PLAIN_DATA``."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name} is not plain data")
        self.qualname = f"{module}.{name}"


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only ``PLAIN_DATA`` globals (the pickle docs' "restricting globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PLAIN_DATA:
            raise NotPlainData(module, name)
        return super().find_class(module, name)


class PartialPull(VariableError):
    """Some pulled variables failed; ``values`` holds the ones that arrived."""

    def __init__(self, message: str, values: dict[str, Any]):
        super().__init__(message)
        self.values = values


def check_identifier(name: str, verb: str) -> None:
    import keyword

    if not name.isidentifier() or keyword.iskeyword(name):
        raise VariableError(f"cannot {verb} {name!r}: not a Python variable name")


def _one_line(value: Any) -> str:
    text = str(value).strip().splitlines()
    return text[0][:200] if text else ""


def forward_message(kind: str, content: dict) -> None:
    """Show one remote iopub message here, as the local kernel would have (ipyparallel's ``%%px`` way)."""
    if kind == "stream":
        target = sys.stderr if content.get("name") == "stderr" else sys.stdout
        target.write(content.get("text", ""))
        target.flush()
    elif kind in ("display_data", "execute_result", "update_display_data"):
        _publish(content, update=kind == "update_display_data")
    elif kind == "clear_output":
        from IPython.display import clear_output

        clear_output(wait=content.get("wait", False))


def _publish(content: dict, update: bool = False) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    data, metadata = content.get("data") or {}, content.get("metadata") or {}
    if not InteractiveShell.initialized():  # plain Python (a script): text is all there is to show
        print(data.get("text/plain", ""))
        return
    from IPython.display import publish_display_data

    kwargs: dict[str, Any] = {"metadata": metadata}
    transient = content.get("transient")
    if transient:
        kwargs["transient"] = transient
    if update:
        kwargs["update"] = True
    publish_display_data(data, **kwargs)


__all__ = ["RemoteKernel", "kernel_command", "RemoteError", "KernelDied", "VariableError", "RuntimeFailure",
           "forward_message"]
