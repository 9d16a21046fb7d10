"""Who trains a run: a lease kept with the run in the tracking store, and a local lock.

Two processes must never train one run: they would write one checkpoint and one metric
history. A lock in this machine's cache folder cannot see a process that uses another cache
folder, or another machine sharing the tracking server, so the guard lives with the run:

* the **lease** is the run tag ``disentangle.lease``, naming the holder (host, process,
  a random token) and when it expires. The holder renews it from a background thread every
  :attr:`RunLease.renew_seconds`; a holder that dies stops renewing, and its lease lapses
  after :attr:`RunLease.ttl_seconds`. On the holder's own host a dead process is seen at
  once, so resuming right after a crash there never waits.
* the **local lock** is an ``flock`` in the run's cache folder, which the kernel drops when
  the process dies; it also guards the run while the tracking store cannot be reached.

A run still marked RUNNING whose lease has lapsed is closed as KILLED by the next command
that looks at it (:func:`settle`), so no run is left RUNNING after its process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from disentangle.errors import UsageError

TAG = "disentangle.lease"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else) or cannot be asked: assume alive
    return True


def holder(run: Any) -> dict[str, Any] | None:
    """The live holder of a logged run's lease (its tag, read), or None when the lease is
    free: never taken, released, lapsed, or held by a process of this host that is gone."""
    text = run.data.tags.get(TAG)
    try:
        lease = json.loads(text) if text else None
        if not isinstance(lease, dict):
            return None
        expires, host, pid = float(lease["expires"]), str(lease["host"]), int(lease["pid"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: nobody can be renewing it
    if time.time() > expires:
        return None
    if host == socket.gethostname() and not _alive(pid):
        return None
    return lease


def settle(tracker: Any, run: Any, ttl: float | None = None) -> Any:
    """Close ``run`` as KILLED when it is marked RUNNING but nobody trains it any more (its
    lease is free and it started more than a lease's lifetime ago); returns the run as the
    store now has it."""
    ttl = RunLease.ttl_seconds if ttl is None else ttl
    if run.info.status != "RUNNING" or holder(run) is not None:
        return run
    if TAG not in run.data.tags and time.time() - run.info.start_time / 1000 < ttl:
        return run  # just created: its process has not taken the lease yet
    tracker.client.set_terminated(run.info.run_id, status="KILLED")
    return tracker.client.get_run(run.info.run_id)


class LocalLock:
    """An exclusive ``flock`` on a file: released by the kernel when the process dies, even
    by ``kill -9``. (Where ``fcntl`` is missing, as on Windows, it is not taken.)"""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise UsageError(f"this run is being trained right now by process {owner}; "
                             "wait for it to stop (or stop it) before resuming") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


class RunLease:
    """The right to train one run: the local lock, then the lease in the tracking store."""

    #: a lease not renewed for this long has lapsed
    ttl_seconds = 60.0
    #: how often the holder renews its lease
    renew_seconds = 15.0
    #: how long a new holder waits before reading its lease back (a rival that read the
    #: lease free at the same moment has written its own by then, and one of them yields)
    settle_seconds = 0.2

    def __init__(self, tracker: Any, run_id: str, lock_path: Path):
        self.tracker, self.run_id = tracker, run_id
        self.local = LocalLock(lock_path)
        self.token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    def _value(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "token": self.token, "expires": time.time() + self.ttl_seconds})

    def _refuse_if_held(self) -> None:
        found = holder(self.tracker.client.get_run(self.run_id))
        if found is not None and found.get("token") != self.token:
            left = max(0, round(float(found["expires"]) - time.time()))
            raise UsageError(
                f"run {self.run_id} is being trained right now by process {found['pid']} "
                f"on {found['host']} (its lease in the tracking store lapses in {left} s "
                "unless renewed); wait for it to stop (or stop it) before resuming")

    def acquire(self) -> None:
        """Take the run or raise UsageError naming who trains it."""
        from mlflow.exceptions import MlflowException

        self.local.acquire()
        try:
            self._refuse_if_held()
            self.tracker.client.set_tag(self.run_id, TAG, self._value())
            time.sleep(self.settle_seconds)
            self._refuse_if_held()
        except UsageError:
            self.local.release()
            raise
        except (MlflowException, OSError, ConnectionError) as exc:
            self.tracker.warn(f"the run's lease could not be taken in tracking store "
                              f"{self.tracker.uri} ({type(exc).__name__}); only this "
                              "machine's lock guards it")
            return
        self._held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="run-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            try:
                self.tracker.client.set_tag(self.run_id, TAG, self._value())
            except Exception:  # noqa: BLE001 (an outage: the lease is renewed when it ends)
                continue

    def release(self) -> None:
        """Stop renewing and give the lease and the lock back."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._held:
            self._held = False
            with contextlib.suppress(Exception):  # store gone: the lease lapses by itself
                self.tracker.client.delete_tag(self.run_id, TAG)
        self.local.release()
