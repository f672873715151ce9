"""Run the server: in the foreground (``server run``) or in a background thread on loopback (demo, tests).

Both go through :func:`uvicorn_config`, which holds the transport's defences: a
deadline for a request's headers and a lingering close (:class:`GuardedHTTP`: a
connection that never sends a full request head is closed; a refusal sent before a
body is read reaches its client), uvicorn's keep-alive timeout and concurrency
cap, and client addresses from ``X-Forwarded-For`` only for the proxies named by
``forwarded_allow_ips`` (never by default).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from datetime import datetime
from typing import Callable, Optional

import uvicorn

from data_spec.errors import KitError

from .app import create_app
from .service import utc_now

#: Seconds a connection may take to send a request's line and headers (uvicorn itself has no such limit).
HEADER_TIMEOUT_S = 10.0
#: Seconds an idle kept-alive connection stays open.
KEEP_ALIVE_S = 5
#: Bytes of an answered request's body read and dropped so that its client reads the answer, and for how
#: long once the connection is to close (a lingering close).
LINGER_BYTES = 256 << 20
LINGER_S = 10.0
#: Connections and requests at once before uvicorn answers 503 (idle connections count: the header
#: deadline is what frees them).
LIMIT_CONCURRENCY = 2048

_log = logging.getLogger("brats_kit.server")


def _auto_protocol() -> type:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return AutoHTTPProtocol


class _Lingering:
    """The connection's transport, whose ``close`` waits for the rest of a request body (see :class:`GuardedHTTP`)."""

    def __init__(self, transport, protocol: "GuardedHTTP"):
        self._transport, self._protocol = transport, protocol

    def close(self) -> None:
        protocol = self._protocol
        if protocol.body_pending() and not self._transport.is_closing() and self._transport.can_write_eof():
            # The answer is out; a close with unread data would reset the connection and the client, still
            # sending, would never read it. Half-close, and read (and drop) the rest for a while.
            protocol.lingering = True
            self._transport.write_eof()
            asyncio.get_running_loop().call_later(protocol.linger_s, self._transport.close)
            return
        self._transport.close()

    def __getattr__(self, name):
        return getattr(self._transport, name)


class GuardedHTTP(_auto_protocol()):
    """uvicorn's HTTP protocol with a deadline on each request head and a lingering close.

    The deadline starts when the connection opens and again after each response;
    once the next request's headers are in (uvicorn has started its request
    cycle) it is cancelled. A client that opens connections and sends nothing, or
    a byte at a time, is disconnected after ``header_timeout`` seconds instead of
    holding a file descriptor forever.

    A refusal sent before the body is read (401, 413, 429) must reach a client that
    is still sending: the rest of that body is read and dropped (at most
    ``linger_bytes``, for at most ``linger_s`` once the connection is to close), the
    way web servers' lingering close does, rather than the connection being reset.
    """

    header_timeout: float = HEADER_TIMEOUT_S
    linger_bytes: int = LINGER_BYTES
    linger_s: float = LINGER_S

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = _Lingering(transport, self)
        self.lingering, self._message_done, self._dropped = False, True, 0
        self._arm_header_deadline()

    def body_pending(self) -> bool:
        """Whether the current request's body is still arriving (its answer may already be out)."""
        return not self._message_done

    def on_message_begin(self) -> None:
        self._message_done, self._dropped = False, 0
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._message_done = True
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self.cycle is not None and self.cycle.response_complete and self.body_pending():
            # The rest of a body already answered: dropped, up to the bound.
            self._dropped += len(data)
            if self._dropped > self.linger_bytes:
                self.transport._transport.close()
                return
            if self.lingering:
                return  # the connection closes after this body: nothing more to parse
        super().data_received(data)
        if self.cycle is not self._cycle_armed:  # a new request's headers are complete
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.lingering:
            self._arm_header_deadline()

    def connection_lost(self, exc) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._cycle_armed = self.cycle
        self._header_timer = asyncio.get_running_loop().call_later(self.header_timeout, self._header_overdue)

    def _cancel_header_deadline(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_overdue(self) -> None:
        self._header_timer = None
        if self.body_pending() and self.cycle is not None and self._dropped <= self.linger_bytes:
            return  # still dropping the rest of an answered body: bounded by linger_bytes, not by this
        if not self.transport.is_closing():
            _log.info("closing a connection that sent no complete request within %g s", self.header_timeout)
            self.transport._transport.close()


def raise_open_files_limit() -> tuple:
    """Raise the soft limit of open files to the hard one (where allowed); return ``(soft, hard)`` after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. an unlimited hard limit the kernel will not grant
            pass
    return soft, hard


def uvicorn_config(app, *, header_timeout: float = HEADER_TIMEOUT_S, keep_alive_s: int = KEEP_ALIVE_S,
                   limit_concurrency: Optional[int] = LIMIT_CONCURRENCY, forwarded_allow_ips: Optional[str] = None,
                   **kw) -> uvicorn.Config:
    """The uvicorn configuration of the server, with the transport's limits (see the module's description).

    ``forwarded_allow_ips``: comma-separated addresses (or ``*``) of the reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed; None: the peer's address is the client's.
    """
    protocol = type("GuardedHTTP", (GuardedHTTP,), {"header_timeout": float(header_timeout)})
    proxied = bool(forwarded_allow_ips)
    return uvicorn.Config(app, http=protocol, timeout_keep_alive=keep_alive_s, limit_concurrency=limit_concurrency,
                          proxy_headers=proxied, forwarded_allow_ips=forwarded_allow_ips if proxied else None,
                          server_header=False, date_header=True, timeout_graceful_shutdown=5, **kw)


def serve(course, *, host: str = "127.0.0.1", port: int = 8000, clock: Callable[[], datetime] = utc_now,
          log_level: str = "info", https_only: bool = False, forwarded_allow_ips: Optional[str] = None,
          max_inflight_per_team: Optional[int] = None, executor: Optional[str] = None,
          code_workers: Optional[int] = None, replica: bool = False, **limits) -> None:
    """Serve ``course`` until interrupted (uvicorn; Ctrl-C stops it cleanly).

    ``https_only``: session cookies are Secure. ``limits``: the transport's, as for :func:`uvicorn_config`;
    ``max_inflight_per_team``, ``executor``, ``code_workers`` and ``replica`` as for
    :func:`~brats_kit.server.app.create_app`.
    """
    raise_open_files_limit()
    app = create_app(course, clock=clock, https_only=https_only, max_inflight_per_team=max_inflight_per_team,
                     executor=executor, code_workers=code_workers, replica=replica)
    uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level,
                                  forwarded_allow_ips=forwarded_allow_ips, **limits)).run()


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
                 log_level: str = "warning", board_interval_s: Optional[float] = None,
                 max_inflight_per_team: Optional[int] = None, executor: Optional[str] = None,
                 code_workers: Optional[int] = None, replica: bool = False, **limits):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.app = create_app(course, clock=clock, scorer=scorer, board_interval_s=board_interval_s,
                              max_inflight_per_team=max_inflight_per_team, executor=executor,
                              code_workers=code_workers, replica=replica)
        self._server = uvicorn.Server(uvicorn_config(self.app, log_level=log_level, lifespan="on", **limits))
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
