"""The end of a stream that arrives in the same TCP segment as the last bytes.

frontdoor lets the reactor wait for a socket's next readiness edge after a short receive, instead of
trying a receive that finds nothing (core/drain_aware_reader.hpp). A FIN that came with those bytes
is consumed by that receive and raises no edge of its own: every read in the middle of a message must
still see it at once, or the exchange would hang until a timeout. Each peer here corks its socket
(TCP_CORK), so the last bytes and the FIN leave in one segment; every timeout is 30 s and every
answer must come within 3 s."""
import socket
import time

from fdtest import Action, Client, build_request, make_config, manifest, send_with_fin

PROMPT = 3.0
PATIENT = {"client_header": "30s", "client_idle": "30s", "client_body": "30s", "upstream_response": "30s"}


def receive_all(sock: socket.socket, deadline: float) -> bytes:
    """Everything until the proxy closes the connection, failing past the deadline."""
    data = b""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("no end of the response after %.1f s: %r" % (PROMPT, data[:200]))
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def answer_through_proxy(frontdoor, upstream, raw_answer: bytes) -> bytes:
    """What a client receives (it asks for the connection to close after the answer) when the upstream answers `raw_answer` and its
    FIN in one segment (one attempt, no retry)."""
    upstream.set_script(Action(mode="raw_with_fin", body=raw_answer))
    cfg = make_config([manifest("p", "m", [upstream], resilience={"retries": {"max_attempts": 1}})],
                      timeouts=PATIENT)
    fd = frontdoor(cfg)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
        c.sendall(build_request("GET", "/p/m/x", headers=(("Connection", "close"),)))
        return receive_all(c, started + PROMPT)


def test_a_close_delimited_body_ends_with_the_upstream_fin(frontdoor, upstream):
    data = answer_through_proxy(frontdoor, upstream, b"HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nwhole body")
    assert data.startswith(b"HTTP/1.1 200"), data
    assert data.endswith(b"\r\n\r\nwhole body"), data


def test_a_body_cut_short_by_the_upstream_ends_at_once(frontdoor, upstream):
    data = answer_through_proxy(frontdoor, upstream, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    assert data.startswith(b"HTTP/1.1 200"), data
    assert data.endswith(b"\r\n\r\nonly part"), data  # then closed: the client sees 9 of 100 bytes


def test_a_response_head_cut_short_by_the_upstream_is_a_502_at_once(frontdoor, upstream):
    data = answer_through_proxy(frontdoor, upstream, b"HTTP/1.1 200 OK\r\nContent-Le")
    assert data.startswith(b"HTTP/1.1 502"), data


def test_a_client_leaving_in_the_middle_of_its_head_is_let_go_at_once(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts=PATIENT))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
        c.sendall(b"GET /p/m/x HTTP/1.1\r\n")
        time.sleep(0.2)  # read by now: the next bytes come through the reactor
        send_with_fin(c, b"Host: fd.test\r\nX-Half: ")
        data = receive_all(c, started + 0.2 + PROMPT)
    assert not data.startswith(b"HTTP/1.1 2"), data
    assert upstream.requests == []


def test_a_client_leaving_in_the_middle_of_its_body_is_let_go_at_once(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts=PATIENT))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", fd.port), timeout=5) as c:
        c.sendall(build_request("POST", "/p/m/upload", headers=(("Content-Length", "1000"),)))
        time.sleep(0.2)  # the head is read and the upload begun: the body comes through the reactor
        send_with_fin(c, b"x" * 10)
        data = receive_all(c, started + 0.2 + PROMPT)
    assert not data.startswith(b"HTTP/1.1 2"), data


def test_a_client_that_half_closes_after_its_request_gets_the_answer(frontdoor, upstream):
    fd = frontdoor(make_config([manifest("p", "m", [upstream])], timeouts=PATIENT))
    with Client(fd.port, timeout=PROMPT) as c:
        send_with_fin(c.sock, build_request("GET", "/p/m/half"))
        r = c.read_response()
    assert r.status == 200, r
    assert b"target=/p/m/half" in r.body, r.body
