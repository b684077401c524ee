"""Gunicorn's sync worker, made to answer every request it has accepted before it stops.

Gunicorn's own sync worker, told to stop (SIGTERM: a deploy, a scale-in, `docker stop`),
finishes the request in hand and exits. Connections the kernel has already accepted for it but
it has not picked up yet (the listen backlog) are reset when the last worker closes the socket:
requests that clients had already sent are lost. This worker, on SIGTERM:

1. asks the kernel to stop completing new connections on the shared listening socket (a socket
   filter that drops incoming SYNs), so that a new caller's connect is refused once the server
   is gone, which callers and load balancers retry safely since nothing was sent. Recent Linux
   kernels allow this filter on a listening socket only with CAP_NET_ADMIN (root on a host, not
   a container's default capabilities); without it the worker keeps accepting while it drains,
   as servers do while a load balancer deregisters them;
2. answers every connection queued for it until none is waiting, or until the graceful timeout
   is close, then closes its copy of the socket at once.

It also notices a SIGTERM that reached it while it was booting: until a worker installs its own
handlers it runs the master's, inherited across fork, which queue the signal in the worker's
copy of the master's memory and forget it; such a worker would serve on until the master's
graceful timeout ran out and killed it.
"""

from __future__ import annotations

import ctypes
import errno
import queue
import signal
import socket
import struct
import sys
import time

from gunicorn.workers.sync import SyncWorker

SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>
# One classic BPF instruction, "return 0": keep no byte of any packet.
_DROP_ALL = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0))
_DROP_ALL_PROGRAM = struct.pack("@HP", 1, ctypes.addressof(_DROP_ALL))
# Stop draining this long before Gunicorn's graceful timeout kills the worker mid-request.
DEADLINE_MARGIN_S = 2


def refuse_new_connections(listener: socket.socket) -> bool:
    """Make the kernel drop new connection attempts on `listener`; False where it cannot."""
    if not sys.platform.startswith("linux") or listener.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _DROP_ALL_PROGRAM)
    except OSError:
        return False
    return True


class DrainingWorker(SyncWorker):
    """A sync worker that, told to stop, answers what is queued for it before exiting."""

    terminating = False
    refusing = False  # whether the kernel took the filter that keeps new connections out
    drain_until = 0.0

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
                self.handle_exit(sig, None)

    def handle_exit(self, sig, frame) -> None:
        if not self.terminating:
            self.terminating = True
            self.drain_until = time.monotonic() + max(self.cfg.graceful_timeout - DEADLINE_MARGIN_S, 1)
            self.refusing = all(refuse_new_connections(listener.sock) for listener in self.sockets)
        super().handle_exit(sig, frame)

    def run(self) -> None:
        super().run()
        if self.terminating:  # not on a max_requests restart: others keep serving then
            self.drain()

    def drain(self) -> None:
        """Answer the connections queued on every listener until none is waiting, then close."""
        self.log.debug("draining queued connections; new ones %s", "refused" if self.refusing else "still accepted")
        for listener in self.sockets:
            while time.monotonic() < self.drain_until:
                self.notify()
                try:
                    self.accept(listener)
                except OSError as error:
                    if error.errno != errno.ECONNABORTED:
                        break  # EAGAIN: none waiting
            # At once: a connection that reaches the queue after the last look would be reset.
            listener.sock.close()
