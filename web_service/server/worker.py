"""The Gunicorn worker: a sync worker behind a small event loop that reads requests and writes answers.

Gunicorn's sync worker gives each connection the whole process from the first byte it reads to
the last it writes. Exposed directly (`make run`, `docker run -p 9696:9696`), as many clients as
there are workers, sending their headers a byte at a time (or never reading their answers), stop
every other request: measured, 0 of 23 normal requests answered during 45 s with 50 slow
connections. This worker keeps Gunicorn's request handling (its parser, its WSGI glue, the
app), but does the waiting in one `selectors` loop, as nginx would:

- a connection is accepted and its bytes collected, without blocking, until the request is whole
  (headers, then the body its Content-Length or chunks declare); only then does the app run,
  on bytes already in memory, and its answer goes into a buffer that the loop sends as the
  client reads it. A slow client costs a file descriptor and its bytes, never the worker;
- a request must arrive whole within Gunicorn's `timeout` (30 s by default), or it is answered
  408; the answer must be read within the same time, or the connection is closed;
- Gunicorn's own errors (a malformed request line, headers too large) keep Gunicorn's status
  and decision, and speak the service's JSON error shape instead of HTML.

On SIGTERM (a deploy, a scale-in, `docker stop`) it answers every connection it holds and every
one still queued on the listening socket, then closes its copy of the socket: connections the
kernel had accepted but no worker had picked up would otherwise be reset when the last worker
closed it (stock Gunicorn loses them). New connections are not refused while it drains: the
socket is shared by every worker, and a reload (SIGHUP), a scale-down (SIGTTOU) or max_requests
replace workers one by one while the others keep serving on it. After max_requests a worker
finishes what it holds and exits; the others pick up the queue.

It also notices a SIGTERM that reached it while it was booting: until a worker installs its own
handlers it runs the master's, inherited across fork, which queue the signal in the worker's
copy of the master's memory and forget it; such a worker would serve on until the master's
graceful timeout ran out and killed it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import re
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from web_service.environment import read
from web_service.settings import AppSettings

# Stop draining this long before Gunicorn's graceful timeout kills the worker mid-request.
DEADLINE_MARGIN_S = 2
# Headers longer than this are handed to Gunicorn's parser whole or not: it refuses them.
HEAD_LIMIT = 64 * 1024
# After the answer, how long to read and discard what a client still sends before closing.
LINGER_S = 2.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# How long a stopping worker keeps taking connections from the queue before it stops listening.
DRAIN_ACCEPT_S = 1.0
# Connections taken from the queue in one go before held ones get their turn again.
ACCEPTS_PER_TURN = 16
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.IGNORECASE)


def request_complete(data: bytes | bytearray, body_limit: int) -> bool:
    """Whether `data` holds a whole request, or as much of one as Gunicorn should see to refuse it."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return len(data) > HEAD_LIMIT
    head, body = bytes(data[:end]), len(data) - end - 4
    if _CHUNKED.search(head):
        return body > body_limit or _chunks_complete(data, end + 4)
    declared = _CONTENT_LENGTH.search(head)
    if declared is None:
        return True
    try:
        length = int(declared.group(1).strip())
    except ValueError:
        return True  # Gunicorn's parser refuses it
    return length > body_limit or body >= length  # too long: the app answers 413 unread


def refusal(head: bytes) -> tuple[int, str, str] | None:
    """The answer to a request whose body cannot be framed, before anything waits for that body.

    Only chunked is decoded, and it must come last (RFC 9112 6.1); Gunicorn would read the others
    as if there were no transfer coding at all.
    """
    codings = [c.strip().lower() for m in _TRANSFER_ENCODING.finditer(head) for c in m.group(1).split(b",")]
    codings = [c for c in codings if c]
    if not codings or codings == [b"chunked"]:
        return None
    if codings.count(b"chunked") > 1:
        return 400, "Bad Request", "chunked is given more than once"
    if codings[-1] != b"chunked" and b"chunked" in codings:
        return 400, "Bad Request", "chunked must be the last transfer coding of a request"
    unknown = b", ".join(c for c in codings if c != b"chunked").decode("latin-1")
    return 501, "Not Implemented", f"transfer coding {unknown!r} is not supported; send chunked or a Content-Length"


def _chunks_complete(data: bytes | bytearray, start: int) -> bool:
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return False
        try:
            size = int(bytes(data[position:line_end]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            return True  # malformed: let the parser say so
        if size == 0:  # the last chunk, then any trailers, then an empty line
            return data.find(b"\r\n\r\n", line_end) >= 0
        position = line_end + 2 + size + 2
        if position > len(data):
            return False


@dataclass(eq=False)
class Connection:
    """One client: its request as it arrives, then its answer as it leaves."""

    sock: socket.socket
    addr: Any
    listener: Any
    deadline: float
    request: bytearray = field(default_factory=bytearray)
    answer: bytearray = field(default_factory=bytearray)
    sent_continue: bool = False
    head_checked: bool = False
    close_requested: bool = False
    unread_left: bool = False  # the app answered before reading the whole body
    watched: bool = False  # registered with the selector


class BufferedClient:
    """What Gunicorn's parser and response see: reads come from the request in memory, writes go
    to the connection's answer buffer. Only a request handed over incomplete (over the body limit)
    reads the rest from the socket itself, blocking, within the request timeout."""

    def __init__(self, connection: Connection, complete: bool, timeout: float) -> None:
        self._connection, self._complete, self._timeout = connection, complete, timeout
        self._view, self._offset = memoryview(bytes(connection.request)), 0

    def recv(self, size: int) -> bytes:
        if self._offset < len(self._view):
            chunk = self._view[self._offset : self._offset + size].tobytes()
            self._offset += len(chunk)
            return chunk
        if self._complete or self._connection.close_requested:
            return b""
        sock = self._connection.sock
        sock.settimeout(self._timeout)
        try:
            return sock.recv(size)
        finally:
            sock.setblocking(False)

    def sendall(self, data: bytes) -> None:
        if data == CONTINUE and self._connection.sent_continue:
            return  # the loop answered the Expect header already, so that the body would come
        self._connection.answer += data

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """A file response (Flask's send_file), into the answer buffer like any other write."""
        file.seek(offset)
        data = file.read(count) if count else file.read()
        self.sendall(data)
        return len(data)

    def shutdown(self, how: int) -> None:
        self._close()

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self._connection.close_requested:
            self._connection.close_requested = True
            self._connection.unread_left = not self._complete or self._offset < len(self._view)

    def settimeout(self, value: float | None) -> None:
        pass

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return self._connection.sock.fileno()

    def getpeername(self) -> Any:
        return self._connection.addr

    def getsockname(self) -> Any:
        return self._connection.sock.getsockname()


class Capture:
    """Takes what Gunicorn writes for an error, to learn the status it chose."""

    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data: bytes) -> None:
        self.data += data

    def gettimeout(self) -> float:
        return 0.0  # Gunicorn writes errors with util.write_nonblock, which asks

    def status(self) -> tuple[int, str]:
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)", bytes(self.data))
        return (int(match.group(1)), match.group(2).decode("latin-1")) if match else (500, "Internal Server Error")


def json_error(status: int, reason: str, message: str) -> bytes:
    """An HTTP answer in the service's one error shape (web_service.errors), from the worker itself."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"
    body = json.dumps({"error": {"code": code, "message": message[:300], "details": []}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode("latin-1") + body


def _ip(addr: Any) -> str:
    return addr[0] if isinstance(addr, tuple) and addr else str(addr)


class JsonErrors:
    """Gunicorn's own errors (a malformed request line, headers too large) in the service's JSON shape."""

    def handle_error(self, req, client, addr, exc) -> None:
        """Gunicorn decides the status and logs; the client gets the service's JSON error shape."""
        capture = Capture()
        super().handle_error(req, capture, addr, exc)
        status, reason = capture.status()
        message = f"the request is not valid HTTP: {exc}" if status < 500 else "internal server error"
        try:
            client.sendall(json_error(status, reason, message))
        except OSError:
            self.log.debug("Failed to send error message.")


class DrainingWorker(JsonErrors, SyncWorker):
    """Gunicorn's sync request handling, with slow clients kept off the worker and a drain on SIGTERM."""

    terminating = False
    drain_until = 0.0

    # --- signals ----------------------------------------------------------------------------

    def init_signals(self) -> None:
        inherited = signal.getsignal(signal.SIGTERM)
        super().init_signals()
        # A SIGTERM that arrived since fork went to the master's handler: look for it there.
        pending = getattr(getattr(inherited, "__self__", None), "SIG_QUEUE", None)
        while pending is not None:
            try:
                sig = pending.get_nowait()
            except queue.Empty:
                break
            if sig == signal.SIGTERM:
                self.log.info("SIGTERM arrived while booting (pid: %s): stopping", self.pid)
                self.handle_exit(sig, None)

    def handle_exit(self, sig, frame) -> None:
        if not self.terminating:
            self.terminating = True
            self.drain_until = time.monotonic() + max(self.cfg.graceful_timeout - DEADLINE_MARGIN_S, 1)
        super().handle_exit(sig, frame)

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        if self.cfg.is_ssl:  # TLS is read by the ssl module, byte by byte: the plain sync worker
            return super().run()
        self.request_timeout = float(self.cfg.timeout or 30)
        self.body_limit = AppSettings.from_env(read()).max_body_bytes + HEAD_LIMIT
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, listener)
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        while self.alive and self._turn():
            pass
        if self.terminating:
            self._drain()
        else:  # max_requests: finish what is held; the other workers take the queue
            self._listen(False)
            deadline = time.monotonic() + self.request_timeout
            while self.connections and time.monotonic() < deadline and self._turn():
                pass
        for listener in self.sockets:
            listener.close()
        for connection in list(self.connections.values()):
            self._close(connection)

    def _drain(self) -> None:
        """On SIGTERM: take what is queued on the listeners, stop listening, answer all that is held.

        One pass over the queue, then no more: in a reload or a scale-down the other workers keep
        taking new connections, and in a shutdown nothing is left queued but what reaches the
        queue after this look (which is reset, as in any server stopping).
        """
        for listener in self.sockets:
            self._accept_all(listener)
        self._listen(False)  # the listeners stay open until the end: a request's environ asks them its address
        self.log.debug("draining: %d connections held", len(self.connections))
        while self.connections and time.monotonic() < self.drain_until and self._turn():
            pass

    def _accept_all(self, listener) -> bool:
        # At most DRAIN_ACCEPT_S, telling the master it is alive: under steady load the queue never
        # empties (each connection is served as it is taken), and a pass without end ran into
        # Gunicorn's timeout, which killed the worker with a request in hand (seen: 1 in 20,017).
        took, until = False, time.monotonic() + DRAIN_ACCEPT_S
        while time.monotonic() < until and self._accept(listener):
            took = True
            self.notify()
        return took

    def _turn(self) -> bool:
        """Wait for what is ready, handle it, expire what is late; False if the master is gone."""
        self.notify()
        for key, events in self.selector.select(self._wait_s()):
            self._ready(key, events)
        self._expire()
        return self.is_parent_alive()

    def _wait_s(self) -> float:
        soonest = min((c.deadline for c in self.connections.values()), default=time.monotonic() + 1.0)
        return max(0.0, min(soonest - time.monotonic(), 1.0))

    def _ready(self, key: selectors.SelectorKey, events: int) -> None:
        if key.data is None:  # the arbiter's wake-up pipe
            with contextlib.suppress(BlockingIOError):
                os.read(self.PIPE[0], 1)
        elif isinstance(key.data, Connection):
            connection = key.data
            if events & selectors.EVENT_WRITE:
                self._send(connection)
            elif connection.close_requested:
                self._linger(connection)
            else:
                self._read(connection)
        elif self.alive:
            # As the sync worker, keep taking connections while some are waiting: under load the
            # queue is rarely empty, and a select per connection would only add a system call.
            for _ in range(ACCEPTS_PER_TURN):
                if not self._accept(key.data) or not self.alive:
                    break

    def _accept(self, listener) -> bool:
        try:
            sock, addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                return error.errno == errno.ECONNABORTED
            raise
        sock.setblocking(False)
        util.close_on_exec(sock)
        connection = Connection(sock, addr, listener, time.monotonic() + self.request_timeout)
        self.connections[sock.fileno()] = connection
        if len(self.connections) == self.cfg.worker_connections:  # full: let the siblings accept
            self._listen(False)
        self._read(connection)  # the request is often there already: no wait on the selector
        return True

    def _read(self, connection: Connection) -> None:
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            return self._close(connection)
        if data == b"":  # the client went away before its request was whole
            return self._close(connection)
        if data:
            connection.request += data
        if not connection.head_checked and (head_end := connection.request.find(b"\r\n\r\n")) >= 0:
            connection.head_checked = True
            if refused := refusal(bytes(connection.request[:head_end])):
                return self._answer_early(connection, *refused)
        elif not connection.head_checked and b"\n\n" in connection.request:  # would wait for a CRLF forever
            return self._answer_early(connection, 400, "Bad Request", "header lines must end with CRLF")
        if request_complete(connection.request, self.body_limit):
            self._serve(connection, complete=True)
        elif len(connection.request) > self.body_limit:
            self._serve(connection, complete=False)
        else:
            self._watch(connection, selectors.EVENT_READ)
            self._expect_continue(connection)

    def _expect_continue(self, connection: Connection) -> None:
        # A client that asked to be told before sending its body (curl, for large ones) waits for it.
        head_end = connection.request.find(b"\r\n\r\n")
        if not connection.sent_continue and head_end >= 0 and _EXPECT_CONTINUE.search(connection.request[:head_end]):
            connection.sent_continue = True
            connection.answer += CONTINUE
            self._send(connection)

    def _serve(self, connection: Connection, complete: bool) -> None:
        """Run Gunicorn's request handling (and so the app) on the request in memory."""
        self._unwatch(connection)
        self.handle(connection.listener, BufferedClient(connection, complete, self.request_timeout), connection.addr)
        connection.close_requested = True
        connection.deadline = time.monotonic() + self.request_timeout
        self._send(connection)

    def _send(self, connection: Connection) -> None:
        try:
            while connection.answer:
                sent = connection.sock.send(connection.answer)
                del connection.answer[:sent]
        except BlockingIOError:
            return self._watch(connection, selectors.EVENT_WRITE)
        except OSError:
            return self._close(connection)
        if not connection.close_requested:  # a 100 Continue went out: the body comes next
            return self._watch(connection, selectors.EVENT_READ)
        if connection.unread_left:  # half-close, then read what the client still sends: no reset
            connection.deadline = time.monotonic() + LINGER_S
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return self._close(connection)
            return self._watch(connection, selectors.EVENT_READ)
        self._close(connection)

    def _linger(self, connection: Connection) -> None:
        try:
            if connection.sock.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close(connection)

    def _expire(self) -> None:
        now = time.monotonic()
        for connection in [c for c in self.connections.values() if c.deadline <= now]:
            if connection.close_requested:  # the client does not read its answer, or lingers
                self._close(connection)
                continue
            message = f"the request did not arrive whole within {self.request_timeout:g} s"
            self._answer_early(connection, 408, "Request Timeout", message)

    def _answer_early(self, connection: Connection, status: int, reason: str, message: str) -> None:
        """Answer before the request is whole (or instead of it) and close, the rest unread."""
        self.log.warning("Invalid request from ip=%s: %s", _ip(connection.addr), message)
        self._unwatch(connection)
        connection.answer[:] = json_error(status, reason, message)
        connection.close_requested, connection.unread_left = True, True
        connection.deadline = time.monotonic() + LINGER_S
        self._send(connection)

    def _watch(self, connection: Connection, events: int) -> None:
        if connection.watched:
            self.selector.modify(connection.sock, events, connection)
        else:
            self.selector.register(connection.sock, events, connection)
            connection.watched = True

    def _unwatch(self, connection: Connection) -> None:
        # Only when registered: the selector's KeyError for a socket it does not hold formats the
        # socket's repr, two getsockname and a getpeername; that was a tenth of a request's CPU.
        if connection.watched:
            connection.watched = False
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(connection.sock)

    def _close(self, connection: Connection) -> None:
        self._unwatch(connection)
        self.connections.pop(connection.sock.fileno(), None)
        connection.sock.close()
        if len(self.connections) == self.cfg.worker_connections - 1 and self.alive:
            self._listen(True)

    def _listen(self, on: bool) -> None:
        for listener in self.sockets:
            with contextlib.suppress(KeyError, ValueError):
                if on:
                    self.selector.register(listener, selectors.EVENT_READ, listener)
                else:
                    self.selector.unregister(listener)


class ThreadedWorker(JsonErrors, ThreadWorker):
    """Gunicorn's gthread worker (GUNICORN_THREADS > 1), its errors in the service's JSON shape.

    It has neither the event loop nor the drain: a thread reads each request, so slow clients
    hold threads, and connections still queued at SIGTERM are reset.
    """
