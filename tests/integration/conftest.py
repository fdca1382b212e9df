"""pytest fixtures for the frontdoor end-to-end tests.

- `upstreams`: factory for scripted upstreams (threads of this process), stopped after the test.
- `frontdoor`: factory that launches the real binary ($FRONTDOOR_BIN) on a config in a temporary
  directory; stopped with SIGTERM after the test (SIGKILL as a last resort); its exit code must be 0
  unless the test said otherwise; stdout/stderr are printed when the test fails.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fdtest  # noqa: E402


def require_binary():
    path = fdtest.frontdoor_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("FRONTDOOR_BIN (%s) is not an executable file" % path, pytrace=False)
    return path


fdtest.require_binary = require_binary


@pytest.fixture
def fd_bin():
    return require_binary()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def upstreams():
    made = []

    def make(name="a", script=None):
        u = fdtest.ScriptedUpstream(name, script)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


@pytest.fixture
def upstream(upstreams):
    return upstreams("a")


class _Launcher:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []

    def __call__(self, config=None, argv=None, listeners=("main",), expect_clean_exit=True, name=None,
                 stdout_pipe=False):
        require_binary()
        fd = fdtest.Frontdoor(str(self.tmp_path), name or "fd%d" % len(self.procs))
        fd.expect_clean_exit = expect_clean_exit
        self.procs.append(fd)
        return fd.start(config, argv=argv, listeners=listeners, stdout_pipe=stdout_pipe)


@pytest.fixture
def frontdoor(tmp_path, request):
    launcher = _Launcher(tmp_path)
    yield launcher
    problems = []
    for fd in launcher.procs:
        was_running = fd.running()
        rc = fd.stop(timeout=10)
        if fd.expect_clean_exit and was_running and rc != 0:
            problems.append("%s: exit code %r after SIGTERM (expected 0)" % (fd.name, fd.returncode))
    if _failed(request) or problems:
        for fd in launcher.procs:
            print(fd.logs())
    if problems and not _failed(request):
        pytest.fail("; ".join(problems))


@pytest.fixture
def tmpdir_str(tmp_path):
    return str(tmp_path)


@pytest.fixture
def redis_server(request):
    """A real redis-server on a Unix socket, stopped after the test."""
    server = fdtest.RedisServer().start()
    yield server
    server.stop()
    if _failed(request):
        print("---- redis-server log:\n" + server.logs()[-5000:])
    server.cleanup()
