"""Executors for ``create``: where the per-tile work runs.

``collect.run.create`` accepts any :class:`concurrent.futures.Executor`. Besides its own local
process pool (``--workers N``), this module gives it a Dask distributed cluster:

* ``scheduler="tcp://HOST:PORT"``: an existing cluster (``dask scheduler`` + ``dask worker``s on
  other machines). Every worker needs this package installed and the output folder mounted at
  the same path (a shared filesystem): tiles are written by the workers, the tree by the client.
* ``local_workers=N``: a ``LocalCluster`` of N single-threaded worker processes on this machine
  (at most one per CPU).

Both yield ``distributed.Client.get_executor()``, whose futures are ordinary
``concurrent.futures`` futures, so ``create`` runs unchanged.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import threading
import time
from typing import Iterator

from sen12ts_stac.errors import UserError


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_pool(workers: int) -> cf.ProcessPoolExecutor:
    """``create``'s own process pool (``--workers N``). Its workers ignore Ctrl-C while idle (a
    KeyboardInterrupt in the queue wait would print a traceback and break the pool) and stop the
    task they run (see :func:`busy`); they exit by themselves when the parent process is gone
    (SIGKILL), instead of running on as orphans."""
    return cf.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),))


_BUSY = False


@contextlib.contextmanager
def busy() -> Iterator[None]:
    """Mark this process as running a task: Ctrl-C interrupts it (in a pool worker too)."""
    global _BUSY
    _BUSY = True
    try:
        yield
    finally:
        _BUSY = False


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, _worker_sigint)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # the parent is gone: a resumed run redoes this tile

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_sigint(signum, frame) -> None:
    if _BUSY:
        raise KeyboardInterrupt


def interrupt_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Send Ctrl-C to the pool's workers: busy ones stop their task (removing its files), idle ones
    ignore it."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.kill(proc.pid, signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active (in the main thread), SIGTERM stops the run as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("Dask is not installed: pip install 'sen12ts-stac[dask]'") from None
    return distributed


@contextlib.contextmanager
def dask_executor(
    scheduler: str | None = None, local_workers: int | None = None, timeout: float = 20.0
) -> Iterator[cf.Executor | None]:
    """A Dask executor for ``create`` (``None`` if neither option is given); closed on exit."""
    if local_workers is not None and local_workers < 1:
        raise UserError(f"--dask-local must be at least 1, got {local_workers}")
    if scheduler is not None and local_workers is not None:
        raise UserError("give either --scheduler or --dask-local, not both")
    if scheduler is not None and (not scheduler.partition("://")[2] or scheduler.endswith(":")):
        raise UserError(f"--scheduler {scheduler!r}: expected an address such as tcp://10.0.0.5:8786")
    if scheduler is None and local_workers is None:
        yield None
        return
    distributed = _distributed()
    cluster = None
    if local_workers is not None:
        cluster = distributed.LocalCluster(
            n_workers=min(local_workers, usable_cpus()),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
        address = cluster.scheduler_address
    else:
        assert scheduler is not None  # both None returned above
        if "://" not in scheduler:
            raise UserError(f"--scheduler {scheduler!r}: expected an address such as tcp://10.0.0.5:8786")
        address = scheduler
    try:
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:  # ValueError: an address distributed cannot parse
            raise UserError(
                f"{address}: cannot reach the Dask scheduler ({type(e).__name__}: {e})".replace("\n", " ")
            ) from None
        with client:
            if scheduler and not client.scheduler_info().get("workers"):
                try:
                    client.wait_for_workers(1, timeout=timeout)
                except TimeoutError:
                    raise UserError(f"{address}: the Dask scheduler has no workers (waited {timeout:.0f} s)") from None
            yield client.get_executor(pure=False)
    finally:
        if cluster is not None:
            cluster.close()
