"""A TCP relay in front of a database server whose link the test can cut and restore."""
from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class CuttableLink:
    """Relays 127.0.0.1:<port> to `target`; `cut()` drops every connection and refuses new ones
    (a lab machine losing its network to the database), `silence()` holds them open and relays
    nothing, `restore()` lets them through again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.silent = threading.Event()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._held: list[socket.socket] = []  # accepted while silent
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            if self.silent.is_set():  # accepted, then nothing relayed until restore()
                with self._lock:
                    self._held.append(client)
                continue
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open += [client, server]
        threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while not self.down.is_set():
                if self.silent.is_set():  # hold both ends open, relay nothing
                    self.stopped.wait(0.05)
                    continue
                for key, _ in selector.select(timeout=0.1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Drop the open connections and refuse new ones."""
        self.down.set()
        with self._lock:
            self._open += self._held
            self._held = []
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def silence(self) -> None:
        """Stop relaying without closing anything (a link that black-holes packets): open
        connections and new ones hang until `restore()`."""
        self.silent.set()

    def restore(self) -> None:
        """Relay again; what connections sent while silent goes through now."""
        self.down.clear()
        self.silent.clear()
        with self._lock:
            held, self._held = self._held, []
        for client in held:
            self._relay(client)

    def close(self) -> None:
        self.stopped.set()
        self.cut()
        self.listener.close()
