"""Run the server: in the foreground (``server run``) or in a background thread on loopback (demo, tests)."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime
from typing import Callable, Optional

import uvicorn

from data_spec.errors import KitError

from .app import create_app
from .service import utc_now


def serve(course, *, host: str = "127.0.0.1", port: int = 8000, clock: Callable[[], datetime] = utc_now,
          log_level: str = "info", executor: Optional[str] = None, code_workers: Optional[int] = None) -> None:
    """Serve ``course`` until interrupted (uvicorn; Ctrl-C stops it cleanly); ``executor``: see ``create_app``."""
    app = create_app(course, clock=clock, executor=executor, code_workers=code_workers)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False,
                date_header=True, timeout_graceful_shutdown=5)


class ServerThread:
    """A server for a course folder in a background thread, on a free loopback port.

    >>> with ServerThread("course", clock=simulated_clock) as server:     # doctest: +SKIP
    ...     receipt = submit("pred.npy", server.url, token)

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT``.
    """

    def __init__(self, course, *, clock: Callable[[], datetime] = utc_now, scorer=None, host: str = "127.0.0.1",
                 log_level: str = "warning", board_interval_s: Optional[float] = None, **app_options):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.app = create_app(course, clock=clock, scorer=scorer, board_interval_s=board_interval_s, **app_options)
        config = uvicorn.Config(self.app, log_level=log_level, server_header=False, lifespan="on",
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"brats-kit-server-{self.port}", daemon=True)
        self._error: Optional[BaseException] = None

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    def start(self, timeout: float = 60.0) -> "ServerThread":
        """Start and wait until the server answers (the scoring workers are up)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise KitError(f"the server did not start ({self._error!r})", code="server_failed")
            if time.monotonic() > deadline:
                self.stop()
                raise KitError("the server did not start in time", code="server_failed")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> "ServerThread":
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(course, *, clock: Callable[[], datetime] = utc_now, scorer=None,
                 board_interval_s: Optional[float] = None) -> ServerThread:
    """Start :class:`ServerThread` for ``course`` and return it (call ``.stop()``, or use it as a context manager).

    ``board_interval_s``: as for :func:`~brats_kit.server.app.create_app` (0: no live board).
    """
    return ServerThread(course, clock=clock, scorer=scorer, board_interval_s=board_interval_s).start()
