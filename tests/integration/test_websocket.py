"""WebSockets through the proxy, with a real WebSocket server and client (Debian's python3-websockets):
the upgrade is offered to the upstream, its 101 relayed, then bytes go both ways until one side
closes; a manifest may refuse upgrades; the tunnel has its own idle timeout and ends with the drain."""
import asyncio
import http.client
import re
import signal
import socket
import threading
import time

import pytest
import websockets

from fdtest import make_config, manifest, read_until_closed, request


class EchoServer:
    """A WebSocket server on 127.0.0.1 in a thread of its own: echoes every message.
    `process_request(path, headers)` may answer a request itself (websockets' hook): plain HTTP."""

    def __init__(self, process_request=None):
        self.loop = asyncio.new_event_loop()
        self.paths = []
        ready = threading.Event()

        async def handler(ws, path):
            self.paths.append(path)
            async for message in ws:
                await ws.send(message)

        async def start():
            self.server = await websockets.serve(handler, "127.0.0.1", 0, ping_interval=None,
                                                 process_request=process_request)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        def run():
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)
        self.address = "127.0.0.1:%d" % self.port

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.stop()


def run(coroutine, timeout=15):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_websocket_echo_through_the_proxy(frontdoor, echo):
    cfg = make_config([manifest("p", "m", [echo.address])], timeouts={"request_total": "1s"})
    cfg["admin"] = {"address": "127.0.0.1:0"}
    fd = frontdoor(cfg)

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/p/m/chat" % fd.port, ping_interval=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            big = bytes(range(256)) * 400  # 100 KiB, both ways
            await ws.send(big)
            assert await ws.recv() == big
            await asyncio.sleep(1.5)  # past request_total: a tunnel is not a request
            for i in range(50):
                await ws.send("m%d" % i)
            assert [await ws.recv() for _ in range(50)] == ["m%d" % i for i in range(50)]
        return ws.close_code

    assert run(session()) == 1000  # a clean close, both ways
    assert echo.paths == ["/p/m/chat"]
    time.sleep(0.2)
    m = fd.metrics()
    assert m["tunnels_opened"] == 1 and m["tunnels_closed"] == 1, m
    assert m["responses"]["1xx"] == 1 and m["errors"] == {}, m
    # The request lasted until the 101, not the tunnel's 1.5 s and more: the latency histogram
    # would put every WebSocket route's quantiles at +Inf.
    scrape = http.client.HTTPConnection("127.0.0.1", fd.ports["admin"], timeout=5)
    scrape.request("GET", "/metrics")
    text = scrape.getresponse().read().decode()
    scrape.close()
    sums = [float(v) for v in re.findall(r"^fd_request_duration_seconds_sum\{[^}]*\} (\S+)$", text, re.M)]
    assert sums and sum(sums) < 1.0, sums


def test_a_manifest_without_upgrades_does_not_offer_them(frontdoor, echo):
    fd = frontdoor(make_config([manifest("p", "m", [echo.address], upgrades=[])]))

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/p/m/chat" % fd.port, ping_interval=None):
            pass

    # The upstream saw a plain GET (no Upgrade) and refused it: the handshake fails, nothing is tunnelled.
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
        run(session())
    assert refused.value.status_code in (400, 426)
    assert fd.metrics()["tunnels_opened"] == 0


def test_an_idle_tunnel_is_closed(frontdoor, echo):
    fd = frontdoor(make_config([manifest("p", "m", [echo.address])], timeouts={"tunnel_idle": "1s"}))

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/p/m/chat" % fd.port, ping_interval=None) as ws:
            t0 = time.monotonic()
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await ws.recv()
            return time.monotonic() - t0

    elapsed = run(session())
    assert 0.8 < elapsed < 3, elapsed


def test_tunnels_close_when_the_drain_is_done(frontdoor, echo):
    fd = frontdoor(make_config([manifest("p", "m", [echo.address])], server={"drain_timeout": "30s"}))

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/p/m/chat" % fd.port, ping_interval=None) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            t0 = time.monotonic()
            fd.signal(signal.SIGTERM)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                while True:
                    await ws.recv()
            return time.monotonic() - t0

    assert run(session()) < 2, "a tunnel held the drain"
    assert fd.wait(5) == 0


def test_open_tunnels_do_not_count_as_requests_in_flight(frontdoor, echo, upstream):
    # Load shedding guards against requests piling up; idle WebSockets are not that. Three tunnels
    # open on a worker that sheds low-priority traffic past one request in flight: still served.
    cfg = make_config([manifest("p", "m", [echo.address]), manifest("batch", "*", [upstream], priority="low")])
    cfg["load_shedding"] = {"max_inflight_requests": 1}
    fd = frontdoor(cfg)

    async def session():
        sockets = [await websockets.connect("ws://127.0.0.1:%d/p/m/chat%d" % (fd.port, i), ping_interval=None)
                   for i in range(3)]
        try:
            for ws in sockets:
                await ws.send("hi")
                assert await ws.recv() == "hi"
            status = await asyncio.get_running_loop().run_in_executor(
                None, lambda: request(fd.port, "GET", "/batch/job").status)
        finally:
            for ws in sockets:
                await ws.close()
        return status

    assert run(session()) == 200



def test_a_websocket_holds_neither_its_endpoints_breaker_probe_nor_a_request_slot(frontdoor):
    # The breaker heard of an upgrade only when its tunnel closed: a WebSocket that was the half-open
    # probe kept every other request out (503) for the tunnel's life; and open tunnels held
    # max_requests slots, so two WebSockets made every plain request of the manifest a 503.
    from http import HTTPStatus

    def plain(path, headers):
        if "Upgrade" in headers:
            return None
        if path.startswith("/p/m/fail"):
            return HTTPStatus.INTERNAL_SERVER_ERROR, [], b"fail\n"
        return HTTPStatus.OK, [], b"ok\n"

    server = EchoServer(process_request=plain)
    try:
        cfg = make_config([manifest("p", "m", [server.address], max_requests=2)])
        cfg["resilience"] = {"circuit_breaker": {"consecutive_failures": 2, "open_duration": "1s",
                                                 "failures": ["connect_error", "timeout", "bad_response", "5xx"]},
                             "outlier_detection": {"consecutive_failures": 0},
                             "retries": {"max_attempts": 1}}
        fd = frontdoor(cfg)
        assert [request(fd.port, "GET", "/p/m/fail").status for _ in range(2)] == [500, 500]
        assert request(fd.port, "GET", "/p/m/ok").status == 503  # open
        time.sleep(1.3)  # half-open: the next request is the probe

        async def session():
            probe = await websockets.connect("ws://127.0.0.1:%d/p/m/chat" % fd.port, ping_interval=None)
            other = await websockets.connect("ws://127.0.0.1:%d/p/m/chat2" % fd.port, ping_interval=None)
            try:
                await probe.send("hi")
                assert await probe.recv() == "hi"
                statuses = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: [request(fd.port, "GET", "/p/m/ok").status for _ in range(3)])
            finally:
                await probe.close()
                await other.close()
            return statuses

        assert run(session()) == [200, 200, 200]
    finally:
        server.stop()



def _accept_upgrade(listener):
    """A raw upstream's side of an upgrade: the connection, and what came after the request head."""
    conn, _ = listener.accept()
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    return conn, data.split(b"\r\n\r\n", 1)[1]


def _upgraded_client(port):
    """A raw client through the proxy, upgraded: the socket, and what came after the 101's head."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /p/m/ws HTTP/1.1\r\nHost: fd.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return c, head.split(b"\r\n\r\n", 1)[1]

def test_a_client_half_close_reaches_the_upstream_and_its_answer_still_comes(frontdoor):
    # "No more input" by shutdown(SHUT_WR), as Docker's attach uses it: the tunnel tore both sides
    # down at the client's FIN, and the upstream's answer to that input was lost.
    upstream = socket.create_server(("127.0.0.1", 0))
    seen = {}

    def serve():
        conn, data = _accept_upgrade(upstream)
        with conn:
            seen["input"] = data + read_until_closed(conn, 5)[0]  # all the client sends, to its end of stream
            time.sleep(0.3)
            conn.sendall(b"answer to " + seen["input"])

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        fd = frontdoor(make_config([manifest("p", "m", ["127.0.0.1:%d" % upstream.getsockname()[1]])]))
        c, rest = _upgraded_client(fd.port)
        with c:
            c.sendall(b"ls -l")
            c.shutdown(socket.SHUT_WR)
            data, end = read_until_closed(c, 5)
        server.join(5)
        assert seen.get("input") == b"ls -l"
        assert rest + data == b"answer to ls -l", (rest + data, end)
        assert end == "closed"
    finally:
        upstream.close()


def test_an_upstream_half_close_reaches_the_client_and_the_clients_bytes_still_go_up(frontdoor):
    # The mirror case: the upstream's FIN ended the tunnel, and what the client still had to send
    # (an upload finishing after the server's last word) was cut off.
    upstream = socket.create_server(("127.0.0.1", 0))
    seen = {}

    def serve():
        conn, _ = _accept_upgrade(upstream)
        with conn:
            conn.sendall(b"send the rest")
            conn.shutdown(socket.SHUT_WR)
            seen["input"] = read_until_closed(conn, 5)[0]

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        fd = frontdoor(make_config([manifest("p", "m", ["127.0.0.1:%d" % upstream.getsockname()[1]])]))
        c, rest = _upgraded_client(fd.port)
        with c:
            data, end = read_until_closed(c, 5)  # the upstream's FIN arrives as the client's
            assert (rest + data, end) == (b"send the rest", "closed")
            c.sendall(b"the rest")
            c.shutdown(socket.SHUT_WR)
            server.join(5)
        assert seen.get("input") == b"the rest"
    finally:
        upstream.close()


def test_after_a_client_half_close_a_silent_upstream_holds_the_tunnel_only_upstream_response(frontdoor):
    # A client that closed outright looks like one that half-closed: the wait for an upstream that
    # never answers nor closes is upstream_response's, not tunnel_idle's.
    upstream = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve():
        conn, _ = _accept_upgrade(upstream)
        with conn:
            done.wait(10)  # silent, and never closes

    threading.Thread(target=serve, daemon=True).start()
    try:
        fd = frontdoor(make_config([manifest("p", "m", ["127.0.0.1:%d" % upstream.getsockname()[1]])],
                                   timeouts={"tunnel_idle": "30s", "upstream_response": "1s"}))
        c, _ = _upgraded_client(fd.port)
        with c:
            c.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            data, end = read_until_closed(c, 10)
        assert end == "closed" and time.monotonic() - started < 3, (data, end, time.monotonic() - started)
    finally:
        done.set()
        upstream.close()
