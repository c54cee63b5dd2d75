"""`ProcessEnv`: a gymnasium environment run in its own process, with a time limit on every call.

Evaluation must survive an environment that hangs (a simulator stuck in a loop,
a deadlocked renderer): a thread cannot be stopped, a process can. Each call
(``reset``, ``step``, ``render``) waits at most ``timeout`` seconds for the
answer; past it the process is killed and :class:`EnvTimeout` is raised, so
the rollout fails that episode only. A process that dies (a segfault in native
code) raises :class:`EnvCrashed`. The next ``reset`` starts a fresh process.

Several ``ProcessEnv`` also step and reset in parallel: ``step_async`` sends the action
and ``step_wait`` collects the answer (``reset_async``/``reset_wait`` likewise), which
:func:`~gato_mini.agent.rollout.run_agent` uses for a batch of slots.

The child is started with ``spawn`` (no state of the parent, such as torch's
thread pool or an EGL context, leaks into it), and the factory travels to it
with cloudpickle (a gymnasium dependency), as in gymnasium's ``AsyncVectorEnv``:
closures and lambdas work too.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from gato_mini.errors import GatoError
from gato_mini.procs import die_with_parent

START_TIMEOUT = 120.0  # seconds to start the process and build the env (imports included)


class EnvError(RuntimeError):
    """The environment raised inside its process; the message names the original error."""


class EnvTimeout(EnvError):
    """The environment did not answer within the time limit; its process was killed."""


class EnvCrashed(EnvError):
    """The environment's process died."""


def describe(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of an exception, the frame being the innermost one."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _serve(conn: Any, factory_bytes: bytes) -> None:
    """The child: build the env, then answer (command, argument) messages until ``close``."""
    import pickle

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        env = pickle.loads(factory_bytes)()
        conn.send(("ok", (env.observation_space, env.action_space, env.spec, env.metadata, env.render_mode)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", describe(exc)))
        return
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        try:
            if cmd == "close":
                env.close()
                conn.send(("ok", None))
                return
            result = env.reset(**arg) if cmd == "reset" else env.step(arg) if cmd == "step" else env.render()
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - the env's own failure, raised again in the parent
            conn.send(("error", describe(exc)))


class ProcessEnv(gym.Env):
    """``factory()`` run in a child process; each call answers within ``timeout`` seconds or raises."""

    def __init__(self, factory: Callable[[], gym.Env], timeout: float = 60.0,
                 name: str | None = None) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        import cloudpickle

        self.factory, self.timeout = factory, float(timeout)
        self.name = name or getattr(factory, "__name__", "env")
        try:
            self._factory_bytes = cloudpickle.dumps(factory)
        except Exception as exc:  # noqa: BLE001 - many types; the message says what to do
            raise GatoError(f"{self.name}: the environment's factory cannot be sent to its own process "
                            f"({type(exc).__name__}: {exc}); use --step-timeout 0 to run it in this "
                            "process") from None
        self._proc: Any = None
        self._conn: Any = None
        self._waiting: str | None = None
        self._described: tuple[Any, ...] | None = None
        self._start()

    def _start(self) -> None:
        """Launch the process; its spaces are awaited on first use, so several envs start in parallel."""
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._factory_bytes), daemon=True,
                                 name=f"gato-mini env {self.name}")
        self._proc.start()
        child.close()
        self._waiting = "start"

    def _ready(self) -> tuple[Any, ...]:
        if self._waiting == "start":
            self._described = self._receive(max(START_TIMEOUT, self.timeout))
        if self._described is None:
            raise EnvCrashed(f"{self.name}: the environment's process never started")
        return self._described

    observation_space = property(lambda self: self._ready()[0])  # type: ignore[assignment]
    action_space = property(lambda self: self._ready()[1])  # type: ignore[assignment]
    spec = property(lambda self: self._ready()[2])  # type: ignore[assignment]
    metadata = property(lambda self: self._ready()[3])  # type: ignore[assignment]
    render_mode = property(lambda self: self._ready()[4])  # type: ignore[assignment]

    def _stop(self) -> int | None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
            code = self._proc.exitcode
            self._conn.close()
            self._proc = self._conn = None
            return code
        return None

    def _send(self, cmd: str, arg: Any) -> None:
        if self._proc is None:
            raise EnvCrashed(f"{self.name}: the environment's process is not running (reset it)")
        try:
            self._conn.send((cmd, arg))
        except (BrokenPipeError, ConnectionError, OSError):
            code = self._stop()
            raise EnvCrashed(f"{self.name}: the environment's process died (exit code {code})") from None
        self._waiting = cmd

    def _receive(self, timeout: float | None = None) -> Any:
        cmd, self._waiting = self._waiting, None
        limit = self.timeout if timeout is None else timeout
        if not self._conn.poll(limit):
            self._stop()
            raise EnvTimeout(f"{self.name}: no answer to {cmd} within {limit:g} s; its process was killed")
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            code = self._stop()
            raise EnvCrashed(f"{self.name}: the environment's process died during {cmd} "
                             f"(exit code {code})") from None
        if status == "error":
            if cmd == "start":
                self._stop()
            raise EnvError(value)
        return value

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.reset_async(seed=seed, options=options)
        return self.reset_wait()

    def reset_async(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Send a reset (a fresh process first, after a timeout or a crash); :meth:`reset_wait` answers."""
        if self._waiting == "start":
            self._ready()
        if self._proc is None or self._waiting is not None:  # after a timeout or a crash: a fresh process
            self._stop()
            self._start()
            self._ready()
        self._send("reset", {"seed": seed, "options": options})

    def reset_wait(self) -> Any:
        return self._receive()

    def step(self, action: Any) -> Any:
        self.step_async(action)
        return self.step_wait()

    def step_async(self, action: Any) -> None:
        self._send("step", action)

    def step_wait(self) -> Any:
        return self._receive()

    def render(self) -> Any:
        self._send("render", None)
        return self._receive()

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._waiting is None:
                self._send("close", None)
                self._receive(5.0)
        except EnvError:
            pass
        self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass
