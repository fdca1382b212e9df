"""Listeners: a port another process holds is refused at start, not silently shared (SO_REUSEPORT)."""
import subprocess

from fdtest import frontdoor_bin, make_config, manifest, to_yaml


def test_second_instance_on_a_taken_port_fails(frontdoor, upstream, tmp_path):
    fd = frontdoor(make_config([manifest("*", "*", [upstream])]))
    cfg = make_config([manifest("*", "*", [upstream])], listeners=[{"name": "main", "address": "127.0.0.1:%d" % fd.port}])
    path = tmp_path / "second.yaml"
    path.write_text(to_yaml(cfg))
    r = subprocess.run([frontdoor_bin(), "run", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "Address already in use" in r.stderr
    assert fd.running()
