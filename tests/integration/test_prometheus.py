"""The metrics as Prometheus sees them: `promtool check metrics` on a scrape taken under load, and
a real Prometheus (Debian's) scraping a running daemon: the prometheus-adapter rule in deploy/
returns the request rate the test generated, within 5 %."""
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest

from fdtest import Client, free_port, make_config, manifest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "deploy", "kubernetes", "prometheus-adapter", "rules.yaml")


def _scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        return c.getresponse().read()
    finally:
        c.close()


def _admin_config(upstream):
    cfg = make_config([manifest("p", "m", [upstream])], server={"workers": 2})
    cfg["admin"] = {"address": "127.0.0.1:0", "rate_window": "5s"}
    return cfg


def _load(port, rate, seconds, sent):
    """About `rate` requests a second for `seconds`, paced, on one keep-alive connection."""
    with Client(port) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            assert c.request("GET", "/p/m/x").status == 200
            sent.append(time.monotonic())
            next_at = t0 + len(sent) / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed")
def test_promtool_accepts_a_scrape_taken_under_load(frontdoor, upstream):
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    sent = []
    t = threading.Thread(target=_load, args=(fd.port, 200, 1.5, sent))
    t.start()
    time.sleep(0.7)
    text = _scrape(fd.ports["admin"])
    t.join(10)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert len(sent) > 100


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus (Debian's) is not installed")
def test_a_real_prometheus_sees_the_request_rate_the_hpa_scales_on(frontdoor, upstream, tmp_path):
    fd = frontdoor(_admin_config(upstream), listeners=("main", "admin"))
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: frontdoor\n    static_configs:\n"
        "      - targets: ['127.0.0.1:%d']\n" % fd.ports["admin"])
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(["prometheus", "--config.file", str(tmp_path / "prometheus.yml"),
                             "--storage.tsdb.path", str(tmp_path / "data"),
                             "--web.listen-address", "127.0.0.1:%d" % prom_port],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        rate = 40.0
        sent = []
        _load(fd.port, rate, 9, sent)  # steady for longer than the 5 s window
        achieved = (len(sent) - 1) / (sent[-1] - sent[0])
        time.sleep(2.5)  # the last sample, then a scrape of it
        # The adapter rule's query, as the adapter would run it for this target.
        rule = open(RULES).read()
        query = re.search(r"metricsQuery: '([^']+)'", rule).group(1)
        query = (query.replace("<<.Series>>", "http_requests_per_second")
                 .replace("<<.LabelMatchers>>", 'job="frontdoor"').replace("<<.GroupBy>>", "job"))
        # At the end of the load: the window ends before the idle seconds after it.
        at = sent[-1]
        wall_at = time.time() - (time.monotonic() - at)
        c = http.client.HTTPConnection("127.0.0.1", prom_port, timeout=10)
        c.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": "%.3f" % wall_at}))
        answer = json.loads(c.getresponse().read())
        c.close()
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        assert result, "Prometheus has no http_requests_per_second for the target: %s" % answer
        seen = float(result[0]["value"][1])
        assert abs(seen - achieved) <= 0.05 * achieved, (seen, achieved)
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
