"""A TCP forwarder on 127.0.0.1 that a test can cut and restore: a real outage of a real server.

Put it between a client and a server (PostgreSQL, say); :meth:`cut` closes every open
connection and refuses new ones, as a crashed or unreachable server would, and
:meth:`restore` lets connections through again.

Example::

    with TcpProxy(("127.0.0.1", 55432)) as proxy:
        url = f"postgresql+psycopg://amur@127.0.0.1:{proxy.port}/amur_test"
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import socket
import threading

__all__ = ["TcpProxy"]


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stopped = True
        self._listener.close()
        self._close_all()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
        self._close_all()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                self._forget(end)

    def _forget(self, end: socket.socket) -> None:
        with self._lock:
            self._open.discard(end)
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()

    def _close_all(self) -> None:
        with self._lock:
            ends = list(self._open)
        for end in ends:
            self._forget(end)
