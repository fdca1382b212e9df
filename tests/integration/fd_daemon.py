"""Frontdoor: launches the real binary on a YAML config written to a temporary directory, waits for its
ports file, captures stdout/stderr to files, stops it with SIGTERM (SIGKILL as a last resort)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Iterable, Optional, Union
from fd_config import to_yaml


# --------------------------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------------------------

def frontdoor_bin() -> str:
    path = os.environ.get("FRONTDOOR_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.normpath(os.path.join(here, "..", "..", "build", "frontdoor"))
    return path


def require_binary() -> str:
    """Replaced by conftest with a version that fails the test cleanly."""
    path = frontdoor_bin()
    assert os.path.isfile(path) and os.access(path, os.X_OK), "FRONTDOOR_BIN (%s) is not executable" % path
    return path


def run_cli(args: list, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run([frontdoor_bin()] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Frontdoor:
    """One frontdoor process. Use through the `frontdoor` fixture, which stops it (also on failure)."""

    def __init__(self, workdir: str, name: str = "fd"):
        self.workdir = workdir
        self.name = name
        self.proc: Optional[subprocess.Popen] = None
        self.ports: dict[str, int] = {}
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.ports_path = os.path.join(workdir, name + ".ports")
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.returncode: Optional[int] = None
        self.expect_clean_exit = True

    def start(self, config: Union[dict, str, None] = None, argv: Optional[list] = None,
              listeners: Iterable[str] = ("main",), wait: float = 10.0, stdout_pipe: bool = False) -> "Frontdoor":
        """Runs `frontdoor run -c CONFIG --ports-file F` (or `frontdoor ARGV...` when argv is given;
        "{ports}" in ARGV stands for the ports file path this launcher waits for). `stdout_pipe`:
        stdout is a pipe (self.proc.stdout) the test reads, or leaves unread, itself."""
        if argv is None:
            text = config if isinstance(config, str) else to_yaml(config)
            with open(self.config_path, "w") as f:
                f.write(text)
            argv = ["run", "-c", self.config_path, "--ports-file", self.ports_path]
        argv = [a.replace("{ports}", self.ports_path) for a in argv]
        self.argv = [frontdoor_bin()] + list(argv)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE if stdout_pipe else self._out,
                                     stderr=self._err, stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if os.path.exists(self.ports_path):
                ports = self.read_ports()
                if all(l in ports for l in listeners):
                    self.ports = ports
                    return self
            if self.proc.poll() is not None:
                raise AssertionError("frontdoor exited with %s before writing its ports file\n%s"
                                     % (self.proc.returncode, self.logs()))
            time.sleep(0.02)
        raise AssertionError("frontdoor wrote no ports file within %.0f s\n%s" % (wait, self.logs()))

    def read_ports(self) -> dict:
        """The ports file as it is now (a reload rewrites it)."""
        ports = {}
        with open(self.ports_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    ports[parts[0]] = int(parts[1])
        return ports

    @property
    def port(self) -> int:
        return self.ports["main"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self, cfg: dict, timeout: float = 10.0):
        """Writes `cfg` to the config file, sends SIGHUP and waits until the daemon logs the reload."""
        done = self.stderr().count("config reloaded")
        with open(self.config_path, "w") as f:
            f.write(to_yaml(cfg))
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.stderr().count("config reloaded") == done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.stderr().count("config reloaded") > done, self.stderr()[-2000:]

    def signal(self, sig=signal.SIGTERM):
        if self.running():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (negative = signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = "killed after %.1f s" % timeout
                self._close_files()
                return None
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f and not f.closed:
                f.close()

    def metrics(self, timeout: float = 5.0) -> dict:
        """Sends SIGUSR1 and returns the metrics line it logs, parsed."""
        before = self._metrics_lines()
        self.signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self._metrics_lines()
            if len(lines) > len(before):
                return json.loads(lines[-1].split(" metrics ", 1)[1])
            time.sleep(0.05)
        raise AssertionError("no metrics line after SIGUSR1\n" + self.logs())

    def _metrics_lines(self) -> list:
        return [l for l in (self.stderr() + self.stdout()).splitlines() if " metrics {" in l]

    def stdout(self) -> str:
        return _read_text(self.stdout_path)

    def stderr(self) -> str:
        return _read_text(self.stderr_path)

    def logs(self) -> str:
        cfg = _read_text(self.config_path) if os.path.exists(self.config_path) else "(none)"
        return ("---- %s argv: %s\n---- config:\n%s\n---- stdout:\n%s\n---- stderr:\n%s\n"
                % (self.name, " ".join(getattr(self, "argv", [])), cfg, self.stdout()[-20000:],
                   self.stderr()[-20000:]))


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
