"""The command line: --version, check, run/check/proxy --help, zero-config proxy, --print-config."""
import os
import re

import pytest

from fdtest import Client, make_config, manifest, request, run_cli, to_yaml


def test_version(fd_bin):
    p = run_cli(["--version"])
    assert p.returncode == 0, p.stderr
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), "no version number in %r" % p.stdout
    assert "frontdoor" in p.stdout.lower()


@pytest.mark.parametrize("command", ["run", "check", "proxy"])
def test_command_help(fd_bin, command):
    p = run_cli([command, "--help"])
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()
    assert command in p.stdout


def test_unknown_command_fails(fd_bin):
    p = run_cli(["frobnicate"])
    assert p.returncode != 0
    assert "usage" in (p.stdout + p.stderr).lower()


def test_check_good_config(fd_bin, tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(to_yaml(make_config([manifest("p", "m", ["127.0.0.1:9"], strip_path_prefix=True)])))
    p = run_cli(["check", "-c", str(path)])
    assert p.returncode == 0, p.stdout + p.stderr


def _start_fails(fd_bin, path):
    """`run` on the file: (exit code, stderr), killing it if it did start."""
    import subprocess
    try:
        p = subprocess.run([fd_bin, "run", "-c", str(path)], capture_output=True, text=True, timeout=3,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        return 0, "started"


def test_check_refuses_what_run_refuses(fd_bin, tmp_path):
    """A file `check` passes must start: the access log's directory, admin.token_env,
    redis.key_secret_env and the TLS files are checked as `run` checks them at start."""
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    cases = {
        "access log": ({"logging": {"level": "info", "access_log": {"destination": str(tmp_path / "no-dir" / "a.log")}}},
                       "logging.access_log.destination"),
        "admin token": ({"admin": {"address": "127.0.0.1:0", "token_env": "FD_TEST_UNSET_TOKEN"}}, "admin.token_env"),
        "key secret": ({"redis": {"address": "127.0.0.1:1", "key_secret_env": "FD_TEST_UNSET_SECRET"}},
                       "redis.key_secret_env"),
        "tls": ({"tls": {"certificate_file": str(not_pem), "private_key_file": str(not_pem)}}, "TLS"),
        # Addresses to listen on that run cannot bind: they passed check.
        "listener host": ({"listener": {"address": "nonexistent.invalid:18080"}}, "listener main address"),
        "admin host": ({"admin": {"address": "nonexistent.invalid:19901"}}, "admin.address"),
        "two listeners": ({"listener": {"address": "127.0.0.1:18080"}, "second": {"address": "0.0.0.0:18080"}},
                          "takes the port of listeners[0]"),
    }
    for name, (over, what) in cases.items():
        cfg = make_config([manifest("p", "m", ["127.0.0.1:9"])])
        if "tls" in over:
            cfg["listeners"][0]["tls"] = over["tls"]
        elif "listener" in over:
            cfg["listeners"][0].update(over["listener"])
            if "second" in over:
                cfg["listeners"].append(dict(over["second"], name="second"))
        else:
            cfg.update(over)
        path = tmp_path / ("%s.yaml" % name.replace(" ", "-"))
        path.write_text(to_yaml(cfg))
        rc, err = _start_fails(fd_bin, path)
        assert rc != 0, "%s: run started: %s" % (name, err)
        if name in ("access log", "admin token"):  # refused before any socket is bound
            assert "listener main on" not in err, (name, err)
        p = run_cli(["check", "-c", str(path)])
        assert p.returncode != 0 and what in p.stderr, (name, p.stdout, p.stderr)


def test_check_shipped_default_config(fd_bin):
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    p = run_cli(["check", "-c", os.path.join(root, "config", "frontdoor.yaml")])
    assert p.returncode == 0, p.stdout + p.stderr


BAD_YAML = """\
server:
  drain_timeout: 10x
listeners:
  - name: main
    address: 127.0.0.1:0
    bogus_key: 1
manifests: []
"""


def test_check_bad_config_reports_every_error_with_position(fd_bin, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    p = run_cli(["check", "-c", str(path)])
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    lines = [l for l in out.splitlines() if re.search(r"bad\.yaml:\d+:\d+: ", l)]
    by_line = {int(re.search(r"bad\.yaml:(\d+):(\d+): ", l).group(1)): l for l in lines}
    assert 2 in by_line, "bad duration (line 2) not reported as bad.yaml:2:COL: ...\n" + out
    assert 6 in by_line, "unknown key (line 6) not reported as bad.yaml:6:COL: ...\n" + out
    assert "bogus_key" in by_line[6], by_line[6]
    assert "10x" in by_line[2] or "duration" in by_line[2].lower(), by_line[2]
    for l in lines:
        col = int(re.search(r"bad\.yaml:\d+:(\d+): ", l).group(1))
        assert col >= 1, l


def test_run_with_bad_config_fails_fast(fd_bin, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    p = run_cli(["run", "-c", str(path), "--ports-file", str(tmp_path / "ports")], timeout=10)
    assert p.returncode != 0
    assert "bad.yaml:2:" in p.stdout + p.stderr
    assert not (tmp_path / "ports").exists()


def test_check_missing_file_fails(fd_bin, tmp_path):
    p = run_cli(["check", "-c", str(tmp_path / "nope.yaml")])
    assert p.returncode != 0
    assert "nope.yaml" in p.stdout + p.stderr


def test_proxy_mode_round_robin_any_path(frontdoor, upstreams, tmp_path):
    a, b = upstreams("a"), upstreams("b")
    fd = frontdoor(argv=["proxy", "--listen", "127.0.0.1:0", "--to", "%s,%s" % (a.address, b.address),
                         "--ports-file", "{ports}", "--access-log", "off"],
                   name="proxy")
    seen = []
    with Client(fd.port) as c:
        for path in ("/", "/anything", "/a/b/c?d=e", "/x"):
            r = c.request("GET", path)
            assert r.status == 200
            seen.append(r.headers.get("X-Upstream"))
            assert r.body == ("upstream=%s method=GET target=%s\n" % (seen[-1], path)).encode()
    assert sorted(seen) == ["a", "a", "b", "b"] and seen[0] != seen[1] and seen[1] != seen[2], seen
    r = request(fd.port, "GET", "/env", headers=[("X-Environment", "whatever")])
    assert r.status == 200


def test_proxy_print_config_is_a_valid_config(fd_bin, frontdoor, upstreams, tmp_path):
    a, b = upstreams("a"), upstreams("b")
    p = run_cli(["proxy", "--listen", "127.0.0.1:0", "--to", "%s,%s" % (a.address, b.address), "--print-config"])
    assert p.returncode == 0, p.stderr
    assert a.address in p.stdout and b.address in p.stdout
    path = tmp_path / "printed.yaml"
    path.write_text(p.stdout)
    chk = run_cli(["check", "-c", str(path)])
    assert chk.returncode == 0, chk.stdout + chk.stderr + "\n" + p.stdout
    # And it runs: the printed config proxies like the command line did.
    fd = frontdoor(p.stdout)
    seen = {request(fd.port, "GET", "/q/%d" % i).headers.get("X-Upstream") for i in range(4)}
    assert seen == {"a", "b"}


def test_proxy_requires_to(fd_bin):
    p = run_cli(["proxy", "--listen", "127.0.0.1:0"])
    assert p.returncode != 0
    assert "--to" in p.stdout + p.stderr
