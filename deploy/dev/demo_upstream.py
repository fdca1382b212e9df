#!/usr/bin/env python3
"""A tiny demo upstream for the README demo (standard library only).

    python3 deploy/dev/demo_upstream.py --port 9001 --name a

Answers every request (any method, any path) with 200, the header `X-Upstream: <name>` and a JSON
body naming the upstream and echoing the method, path and request headers. Threaded; exits 0 on
SIGTERM or SIGINT.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the proxy's upstream pool is exercised
    server_version = "demo-upstream"
    name = "demo"
    quiet = False

    def _answer(self):
        length = self.headers.get("Content-Length")
        body_len = 0
        if length and length.isdigit():
            body_len = len(self.rfile.read(int(length)))
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body_len = self._drain_chunked()
        payload = {
            "upstream": self.name,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": body_len,
        }
        body = (json.dumps(payload, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", self.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain_chunked(self):
        total = 0
        for _ in range(1_000_000):
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return total
            total += len(self.rfile.read(size))
            self.rfile.readline()
        return total

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("[%s] %s - %s\n" % (self.name, self.address_string(), fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="demo")
    parser.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = parser.parse_args()

    Handler.name = args.name
    Handler.quiet = args.quiet
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write("demo upstream %s on http://%s:%d\n" % (args.name, args.host, server.server_port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
