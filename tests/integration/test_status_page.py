"""The admin listener's status page, in a real browser (Debian's headless Chromium): the page's
JavaScript reads /status.json and fills in endpoints, breakers, manifests, limits and reloads; a
screenshot is kept as a test artifact (test-artifacts/status-page.png beside the binary)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from fdtest import frontdoor_bin, make_config, manifest, request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--user-data-dir=%s" % (tmp_path / "profile"), "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_status_page_renders_in_chromium(frontdoor, upstream, tmp_path):
    cfg = make_config([manifest("shop", "cart", [upstream])], server={"workers": 2})
    cfg["rate_limits"] = [{"name": "everyone", "requests_per_second": 1000, "burst": 1000}]
    cfg["admin"] = {"address": "127.0.0.1:0"}
    fd = frontdoor(cfg, listeners=("main", "admin"))
    for i in range(5):
        assert request(fd.port, "GET", "/shop/cart/%d" % i).status == 200
    fd.signal(signal.SIGHUP)  # one reload in the history
    deadline = time.monotonic() + 5
    while "config reloaded" not in fd.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    url = "http://127.0.0.1:%d/" % fd.ports["admin"]

    dom = _chromium(tmp_path, "--dump-dom", url)
    html = dom.stdout.decode()
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    assert "<td>%s</td>" % upstream.address in html, html[-3000:]
    assert '<td class="good">closed</td>' in html
    assert "<td>shop/cart/*</td>" in html
    assert "<td>everyone</td>" in html and "<td>(top level)</td>" in html
    assert '<td class="good">reloaded</td>' in html
    assert 'id="ready" class="good">ready<' in html
    assert "config generation 2" in html

    artifacts = os.path.join(os.path.dirname(os.path.abspath(frontdoor_bin())), "test-artifacts")
    os.makedirs(artifacts, exist_ok=True)
    shot = os.path.join(artifacts, "status-page.png")
    if os.path.exists(shot):
        os.unlink(shot)
    result = _chromium(tmp_path, "--window-size=1100,900", "--screenshot=%s" % shot, url)
    assert result.returncode == 0 and os.path.getsize(shot) > 10000, result.stderr.decode()[-2000:]
