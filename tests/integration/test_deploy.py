"""deploy/: the Kubernetes kit's configuration (deploy/kubernetes/base) passes `frontdoor check`, its probes
point at the admin listener it configures, and the Deployment leaves time for the drain."""
import os
import re

import yaml

from fdtest import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _docs():
    # The kustomize base: frontdoor.yaml becomes the ConfigMap (configMapGenerator) the Deployment mounts.
    base = os.path.join(ROOT, "deploy", "kubernetes", "base")
    with open(os.path.join(base, "frontdoor.yaml")) as f:
        config = f.read()
    with open(os.path.join(base, "deployment.yaml")) as f:
        deployment = yaml.safe_load(f)
    return {"ConfigMap": {"data": {"frontdoor.yaml": config}}, "Deployment": deployment}


def test_the_configmap_config_is_valid(tmp_path):
    text = _docs()["ConfigMap"]["data"]["frontdoor.yaml"]
    # The cluster's service names do not resolve here: the rest is checked as the daemon would.
    text = re.sub(r"[a-z0-9.-]+\.svc\.cluster\.local:(\d+)", r"127.0.0.1:\1", text)
    path = tmp_path / "frontdoor.yaml"
    path.write_text(text)
    result = run_cli(["check", "-c", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_probes_and_drain_match_the_config():
    docs = _docs()
    config = yaml.safe_load(docs["ConfigMap"]["data"]["frontdoor.yaml"])
    admin_port = int(config["admin"]["address"].rsplit(":", 1)[1])
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["admin"] == admin_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "admin"}

    def seconds(text):
        return int(text.rstrip("s"))

    drain = seconds(config["server"]["drain_delay"]) + seconds(config["server"]["drain_timeout"])
    assert pod["terminationGracePeriodSeconds"] > drain
    assert container["securityContext"]["runAsNonRoot"] is True
