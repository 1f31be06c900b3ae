"""The exit flush on SIGTERM, for servers that leave SIGTERM to the default.

Counts are written by a flush at interpreter exit (:mod:`atexit`). Python
runs exit handlers on a normal exit, on ``sys.exit()`` and on Ctrl-C, but
not when SIGTERM kills the process with the default action, which is how
the Flask dev server, waitress, the demo and ``docker stop`` end: before this
module, ``flask run`` stopped with SIGTERM stored none of its counts.

:func:`install` therefore sets a SIGTERM handler that runs the exit flush
and then ends the process as the default action would (killed by SIGTERM,
so a supervisor sees the same exit status). It does so only where that
cannot take anything away from the host:

* only while SIGTERM has the default action: a handler the host installed
  (or ``SIG_IGN``) is kept, and a host that installs one later replaces ours;
* only in the main thread, the only one Python lets set signal handlers;
* never under gunicorn or uWSGI, which handle SIGTERM themselves and run the
  exit handlers of their workers.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import weakref
from types import FrameType
from typing import Any

from .database import exit_flush_bound
from .state import StatusState

log = logging.getLogger("flask_server_status")

#: Servers that own SIGTERM in the processes that load the app.
SERVERS_WITH_THEIR_OWN_HANDLER = ("gunicorn.arbiter", "gunicorn.workers", "uwsgi")

# What the handler flushes: every state whose app asked, weakly (tests make
# hundreds of apps and throw them away).
_states: weakref.WeakSet[StatusState] = weakref.WeakSet()
_installed = False


def install(state: StatusState) -> bool:
    """Flush ``state``'s buffer on SIGTERM; install the handler if it is ours to install.

    :returns: whether our handler is in place (it may be from an earlier app).
    """
    global _installed
    _states.add(state)
    if _installed and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        return True
    if not _may_install():
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True
    return True


def _may_install() -> bool:
    if not hasattr(signal, "SIGTERM"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if any(name in sys.modules for name in SERVERS_WITH_THEIR_OWN_HANDLER):
        return False
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def flush_all(timeout: float | None = None) -> None:
    """Stop every registered buffer and flush it, waiting at most ``timeout`` seconds.

    The flush runs in its own thread: the signal may have interrupted the
    main thread inside the buffer (holding a lock the flush needs), and the
    wait must stay bounded even then. The database calls themselves are
    bounded by the write timeout (:mod:`.database`).
    """
    states = list(_states)
    if timeout is None:
        timeout = _bound(states)

    def run() -> None:
        for state in states:
            try:
                state.buffer.stop(flush=True)
            except Exception:  # one app's failure must not cost the others their counts
                log.exception("flask-server-status: the exit flush failed")

    worker = threading.Thread(target=run, name="flask-server-status-exit-flush", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.error(
            "flask-server-status: the exit flush did not finish within %.0f s; exiting anyway",
            timeout,
        )


def _bound(states: list[StatusState]) -> float:
    return max((exit_flush_bound(state.settings) for state in states), default=10.0)


def _on_sigterm(signum: int, frame: FrameType | None) -> Any:
    flush_all()
    # Then what the default action does: end the process, killed by SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    # Still here: the default action is "ignore" for PID 1 in a container
    # (``docker stop``). Exit instead, as the stop asked.
    raise SystemExit(128 + signal.SIGTERM)
