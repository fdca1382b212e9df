"""A real PostgreSQL (and PgBouncer in front of it) for the tests that need one: initdb into a
temporary directory, a Unix socket there plus a loopback port, started and stopped by PID. Run as
the `postgres` user when the tests run as root (the server refuses root)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

from fd_daemon import _read_text


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not found:
        raise AssertionError("PostgreSQL's %s is not installed (deploy/dev/install-deps.sh test)" % name)
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: Optional[subprocess.Popen], sig: int, wait: float):
    """Stops a process we started, by its PID: `sig`, then SIGKILL if it is still there after `wait`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _AsServiceUser:
    """Runs commands as `postgres` when we are root; files it writes live in a directory it owns."""

    def __init__(self):
        self.root = os.geteuid() == 0
        self.user = pwd.getpwnam("postgres") if self.root else None

    def argv(self, argv):
        # setpriv execs the program itself: the PID we hold is the server's, and signals reach it.
        return (["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"] + argv) if self.root \
            else argv

    def own(self, path: str):
        if self.root:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)


class PostgresServer:
    """A private PostgreSQL cluster: user `frontdoor` (trust auth, loopback and the socket only),
    database `frontdoor`, every statement logged (tests count queries in the log)."""

    creates_database = True

    def __init__(self):
        self._as = _AsServiceUser()
        self.dir = tempfile.mkdtemp(prefix="fd-pg-")
        os.chmod(self.dir, 0o755)
        self._as.own(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = _free_port()
        self.proc: Optional[subprocess.Popen] = None
        self._initialized = False

    @property
    def dsn(self) -> str:
        return "host=%s port=%d user=frontdoor dbname=frontdoor" % (self.dir, self.port)

    @property
    def tcp_dsn(self) -> str:
        return "host=127.0.0.1 port=%d user=frontdoor dbname=frontdoor" % self.port

    def _init_data(self):
        subprocess.run(self._as.argv([_pg_bin("initdb"), "-D", self.data, "-U", "frontdoor", "--auth=trust",
                                      "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self, wait: float = 30.0) -> "PostgresServer":
        if not self._initialized:
            self._init_data()
            self._initialized = True
        log = open(self.log_path, "ab")
        self._as.own(self.log_path)
        self.proc = subprocess.Popen(
            self._as.argv([_pg_bin("postgres"), "-D", self.data, "-p", str(self.port), "-k", self.dir,
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "log_statement=all",
                           "-c", "log_line_prefix=%m [%p] ", "-c", "max_connections=100"]),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("postgres exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            r = subprocess.run([_pg_bin("pg_isready"), "-h", self.dir, "-p", str(self.port), "-U", "frontdoor",
                                "-d", "postgres"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            if r.returncode == 0:
                if self.creates_database and not os.path.exists(os.path.join(self.dir, ".created")):
                    self.sql("CREATE DATABASE frontdoor", db="postgres")
                    open(os.path.join(self.dir, ".created"), "w").close()
                return self
            time.sleep(0.1)
        raise AssertionError("postgres did not start within %.0f s:\n%s" % (wait, self.logs()))

    def stop(self):
        """Fast shutdown (SIGINT): clients are disconnected at once."""
        _stop(self.proc, signal.SIGINT, 20)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        return _read_text(self.log_path)

    def sql(self, statement: str, db: str = "frontdoor") -> str:
        r = subprocess.run([_pg_bin("psql"), "-h", self.dir, "-p", str(self.port), "-U", "frontdoor", "-d", db,
                            "-v", "ON_ERROR_STOP=1", "-Atq", "-c", statement],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("psql: %s\n%s" % (statement, r.stderr))
        return r.stdout.strip()

    def count_in_log(self, text: str) -> int:
        return self.logs().count(text)


class PostgresReplica(PostgresServer):
    """A hot standby streaming from `primary` (pg_basebackup -R over its socket; a fast checkpoint,
    not a spread one that would take 90 s): read-only, every statement logged, its WAL replay
    pausable to make it lag on purpose."""

    creates_database = False  # it has the primary's

    def __init__(self, primary: PostgresServer):
        super().__init__()
        self.primary = primary

    def _init_data(self):
        subprocess.run(self._as.argv([_pg_bin("pg_basebackup"), "-D", self.data, "-h", self.primary.dir,
                                      "-p", str(self.primary.port), "-U", "frontdoor", "-R", "-X", "stream",
                                      "--checkpoint=fast", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def pause_replay(self):
        self.sql("SELECT pg_wal_replay_pause()")


class PgBouncer:
    """PgBouncer in transaction pooling in front of `server`, on a loopback port."""

    def __init__(self, server: PostgresServer):
        self.server = server
        self._as = _AsServiceUser()
        self.dir = tempfile.mkdtemp(prefix="fd-pgb-")
        os.chmod(self.dir, 0o755)
        self._as.own(self.dir)
        self.port = _free_port()
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        self.proc: Optional[subprocess.Popen] = None
        self._holders: list = []
        self.pool_size = 2  # server connections per database (default_pool_size)

    @property
    def dsn(self) -> str:
        return "host=127.0.0.1 port=%d user=frontdoor dbname=frontdoor" % self.port

    def start(self, wait: float = 10.0) -> "PgBouncer":
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            raise AssertionError("pgbouncer is not installed (deploy/dev/install-deps.sh test)")
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write('"frontdoor" ""\n')
        with open(ini, "w") as f:
            f.write("[databases]\nfrontdoor = host=%s port=%d dbname=frontdoor\n" % (self.server.dir, self.server.port))
            f.write("[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n" % self.port)
            f.write("auth_type = trust\nauth_file = %s\npool_mode = transaction\nlogfile = %s\n" % (users, self.log_path))
            f.write("max_client_conn = 100\ndefault_pool_size = %d\n" % self.pool_size)
        for path in (ini, users):
            self._as.own(path)
        self.proc = subprocess.Popen(self._as.argv([binary, ini]), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("pgbouncer exited with %s:\n%s" % (self.proc.returncode, _read_text(self.log_path)))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("pgbouncer did not listen within %.0f s" % wait)

    def hold_server_connections(self):
        """Takes every server connection of the pool (default_pool_size) into an open transaction, so
        that any other client's query waits in PgBouncer's queue, unanswered: a stuck pool."""
        for _ in range(self.pool_size):
            p = subprocess.Popen([_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "frontdoor",
                                  "-d", "frontdoor", "-Atq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            self._holders.append(p)
            p.stdin.write("BEGIN; SELECT 'held';\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == "held", "psql did not open its transaction"

    def stop(self):
        for p in self._holders:
            _stop(p, signal.SIGTERM, 5)
        self._holders = []
        _stop(self.proc, signal.SIGTERM, 10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
