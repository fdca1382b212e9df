"""A loopback TCP relay in front of a server, for tests that need the server's answers late."""
from __future__ import annotations

import select
import socket
import threading
import time


class DelayingRelay:
    """Relays every connection to `target` (host, port); what the server sends is held `delay`
    seconds (settable at any time) before it goes on. `wait_for_sent` waits until clients have sent
    given bytes. `close()` ends every connection."""

    def __init__(self, target: tuple):
        self.target = target
        self.delay = 0.0
        self._sent = bytearray()  # everything clients sent, for wait_for_sent
        self._sent_changed = threading.Condition()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            t = threading.Thread(target=self._relay, args=(client, server), daemon=True)
            self._threads.append(t)
            t.start()

    def _relay(self, client: socket.socket, server: socket.socket):
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is server and self.delay > 0:
                        time.sleep(self.delay)
                    if s is client:
                        with self._sent_changed:
                            self._sent += data
                            self._sent_changed.notify_all()
                    (server if s is client else client).sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()

    def wait_for_sent(self, needle: bytes, timeout: float = 10.0) -> bool:
        """Whether some client sent `needle` (on any connection, since the relay started) in time."""
        with self._sent_changed:
            return self._sent_changed.wait_for(lambda: needle in self._sent, timeout)

    def close(self):
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(2)
