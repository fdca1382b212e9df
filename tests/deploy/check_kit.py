#!/usr/bin/env python3
"""What the schemas cannot say about the rendered Kubernetes kit, checked field by field.

    python3 check_kit.py RENDER_DIR      (validate.sh renders base.yaml, dev.yaml, prod.yaml there)

- the HorizontalPodAutoscaler of base and prod is exactly the designed one (issue #10), every number;
- the Deployment agrees with the frontdoor.yaml of the ConfigMap it mounts: the grace period covers
  preStop + server.drain_delay + server.drain_timeout, the probes hit /health and /ready on the
  admin listener's port, the traffic port is the listener's; the pod is locked down; Secrets are
  optional references;
- the NetworkPolicy opens the traffic port to all and the admin port only to named sources; the
  ServiceMonitor scrapes /metrics on the admin port;
- every metric name in the Grafana dashboard's queries, the Flagger metric templates, the
  prometheus-adapter rule and the HPA is one docs/metrics.md lists.
Each failure is printed with what was expected; the exit status is 1 if any.
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE = os.path.join(ROOT, "deploy", "kubernetes")

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def expect(where, what, actual, wanted):
    if actual != wanted:
        fail(where, f"{what} is {actual!r}, expected {wanted!r}")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind, name=None, where=""):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        fail(where, f"expected one {kind}{' ' + name if name else ''}, rendered {len(found)}")
        return None
    return found[0]


# --- The HorizontalPodAutoscaler as designed ------------------------------------------------------

DESIGNED_METRICS = [
    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}},
    {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                              "target": {"type": "AverageValue", "averageValue": 1000}}},
]
DESIGNED_BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15},
                             {"type": "Pods", "value": 4, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 300,
                  "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
}


def quantity(value):
    """A Kubernetes quantity as a number ("1000", 1000, "1k", "500m")."""
    if isinstance(value, (int, float)):
        return value
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G)?", str(value))
    if not m:
        return value
    return float(m.group(1)) * {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def check_hpa(where, hpa, exact_replicas):
    spec = hpa["spec"]
    expect(where, "apiVersion", hpa["apiVersion"], "autoscaling/v2")
    expect(where, "spec.scaleTargetRef", spec.get("scaleTargetRef"),
           {"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontdoor"})
    if exact_replicas:
        expect(where, "spec.minReplicas", spec.get("minReplicas"), 3)
        expect(where, "spec.maxReplicas", spec.get("maxReplicas"), 100)
    elif not 1 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0):
        fail(where, f"minReplicas {spec.get('minReplicas')} and maxReplicas {spec.get('maxReplicas')} are not 1 <= min <= max")
    metrics = spec.get("metrics", [])
    if len(metrics) != len(DESIGNED_METRICS):
        fail(where, f"spec.metrics has {len(metrics)} entries, expected {len(DESIGNED_METRICS)} (CPU, memory, Pods)")
    for i, wanted in enumerate(DESIGNED_METRICS):
        actual = json.loads(json.dumps(metrics[i])) if i < len(metrics) else None
        if actual and actual.get("type") == "Pods":
            target = actual["pods"]["target"]
            if "averageValue" in target:
                target["averageValue"] = quantity(target["averageValue"])
        expect(where, f"spec.metrics[{i}]", actual, wanted)
    behavior = spec.get("behavior", {})
    for direction, wanted in DESIGNED_BEHAVIOR.items():
        actual = behavior.get(direction)
        for key, value in wanted.items():
            expect(where, f"spec.behavior.{direction}.{key}", (actual or {}).get(key), value)
        extra = set(actual or {}) - set(wanted) - ({"selectPolicy"} if direction == "scaleDown" else set())
        if extra:
            fail(where, f"spec.behavior.{direction} has fields the design does not: {sorted(extra)}")


# --- Deployment against its configuration ---------------------------------------------------------

def seconds(text):
    """A frontdoor duration (docs/configuration.md): 250ms, 10s, 2m, 1h or 0."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text))
    if not m or (m.group(2) is None and m.group(1) != "0"):
        raise ValueError(f"{text!r} is not a duration")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0}[m.group(2)]


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def check_deployment(where, docs):
    dep = one(docs, "Deployment", "frontdoor", where)
    if not dep:
        return
    pod = dep["spec"]["template"]["spec"]
    containers = [c for c in pod["containers"] if c["name"] == "frontdoor"]
    if not containers:
        return fail(where, "the Deployment has no container named frontdoor")
    c = containers[0]
    # The configuration the pods mount.
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    args = c.get("args", [])
    config_path = args[args.index("-c") + 1] if "-c" in args else None
    if not config_path:
        return fail(where, f"the container's args {args} name no configuration file (-c FILE)")
    volume = next((v for v in pod.get("volumes", []) if mounts.get(v["name"]) == os.path.dirname(config_path)), None)
    if not volume or "configMap" not in volume:
        return fail(where, f"no ConfigMap volume is mounted at {os.path.dirname(config_path)}")
    cm = one(docs, "ConfigMap", volume["configMap"]["name"], where)
    if not cm:
        return
    key = os.path.basename(config_path)
    if key not in cm.get("data", {}):
        return fail(where, f"ConfigMap {cm['metadata']['name']} has no key {key}")
    config = yaml.safe_load(cm["data"][key])
    server = config.get("server", {})

    # Drain: the grace period covers preStop, drain_delay and drain_timeout.
    pre_stop = c.get("lifecycle", {}).get("preStop", {})
    pre_stop_s = 0
    if "exec" in pre_stop:
        command = pre_stop["exec"]["command"]
        if os.path.basename(command[0]) == "sleep":
            pre_stop_s = float(command[1])
    elif "sleep" in pre_stop:
        pre_stop_s = pre_stop["sleep"]["seconds"]
    if not pre_stop:
        fail(where, "the container has no preStop hook")
    drain_delay = seconds(server.get("drain_delay", "0s"))
    drain_timeout = seconds(server.get("drain_timeout", "30s"))
    if drain_delay <= 0:
        fail(where, "server.drain_delay is 0: /ready would not leave the endpoints time to go")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not grace > pre_stop_s + drain_delay + drain_timeout:
        fail(where, f"terminationGracePeriodSeconds {grace} is not above preStop {pre_stop_s:g} s + "
                    f"server.drain_delay {drain_delay:g} s + server.drain_timeout {drain_timeout:g} s")

    # Probes on the admin listener, traffic on the listener.
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    admin = config.get("admin", {}).get("address")
    if not admin:
        return fail(where, "frontdoor.yaml has no admin.address: no probes, no metrics")
    if not (admin.startswith("0.0.0.0:") or admin.startswith("[::]:")):
        fail(where, f"admin.address {admin} does not listen on the pod's address: the kubelet could not probe it")
    expect(where, "containerPort 'admin'", ports.get("admin"), port_of(admin))
    listener_ports = sorted(port_of(listener["address"]) for listener in config.get("listeners", []))
    expect(where, "containerPort 'http' among the listeners' ports", ports.get("http") in listener_ports, True)
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/ready")):
        get = c.get(probe, {}).get("httpGet")
        if probe != "startupProbe" or get:
            expect(where, f"{probe}.httpGet", get, {"path": path, "port": "admin"})

    # Locked down.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    expect(where, "pod securityContext.runAsNonRoot", psc.get("runAsNonRoot"), True)
    expect(where, "pod securityContext.seccompProfile", psc.get("seccompProfile"), {"type": "RuntimeDefault"})
    expect(where, "container readOnlyRootFilesystem", csc.get("readOnlyRootFilesystem"), True)
    expect(where, "container allowPrivilegeEscalation", csc.get("allowPrivilegeEscalation"), False)
    expect(where, "container capabilities.drop", csc.get("capabilities", {}).get("drop"), ["ALL"])
    for resource in ("cpu", "memory"):
        for kind in ("requests", "limits"):
            if resource not in c.get("resources", {}).get(kind, {}):
                fail(where, f"the container has no {resource} {kind}")

    # Credentials: Secret references, optional (the pod starts without them), the Redis one named
    # by redis.password_env.
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
               if "secretKeyRef" in e.get("valueFrom", {})}
    for name, ref in secrets.items():
        if ref.get("optional") is not True:
            fail(where, f"env {name}: the secretKeyRef to {ref['name']} is not optional: true")
    password_env = config.get("redis", {}).get("password_env")
    if password_env and password_env not in secrets:
        fail(where, f"redis.password_env names {password_env}, which no secretKeyRef sets")
    if not any(ref["name"] == "frontdoor-postgresql" for ref in secrets.values()):
        fail(where, "no env refers to the Secret frontdoor-postgresql")
    return ports


def check_network(where, docs, ports):
    policy = one(docs, "NetworkPolicy", "frontdoor", where)
    if policy:
        open_ports, guarded_ports = set(), set()
        for rule in policy["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                (guarded_ports if rule.get("from") else open_ports).add(p.get("port"))
            if not rule.get("ports") and not rule.get("from"):
                fail(where, "a NetworkPolicy ingress rule allows every port from everywhere")
        if "admin" in open_ports or ports.get("admin") in open_ports:
            fail(where, "the NetworkPolicy opens the admin port to every source")
        if "admin" not in guarded_ports and ports.get("admin") not in guarded_ports:
            fail(where, "the NetworkPolicy lets nothing reach the admin port (Prometheus must)")
        if "http" not in open_ports and ports.get("http") not in open_ports:
            fail(where, "the NetworkPolicy does not open the traffic port")
    monitor = one(docs, "ServiceMonitor", "frontdoor", where)
    if monitor:
        endpoints = monitor["spec"].get("endpoints", [])
        if not any(e.get("port") == "admin" and e.get("path", "/metrics") == "/metrics" for e in endpoints):
            fail(where, f"the ServiceMonitor does not scrape /metrics on the port named admin: {endpoints}")
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        services = [s for s in docs if s["kind"] == "Service"
                    and selector.items() <= s["metadata"].get("labels", {}).items()]
        if not any(p.get("name") == "admin" and p.get("targetPort") in ("admin", ports.get("admin"))
                   for s in services for p in s["spec"]["ports"]):
            fail(where, f"no Service selected by the ServiceMonitor ({selector}) has a port admin to the admin port")


# --- Metric names ----------------------------------------------------------------------------------

def documented_metrics():
    """name -> type, from the tables of docs/metrics.md (the column whose header says Prometheus)."""
    names = {}
    header = None
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        for line in f:
            if not line.startswith("|"):
                header = None
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
                continue
            if set("".join(cells)) <= set("-: "):
                continue
            name_col = next((i for i, h in enumerate(header) if "Prometheus" in h), None)
            type_col = next((i for i, h in enumerate(header) if h == "type"), None)
            if name_col is None or type_col is None:
                continue
            m = re.fullmatch(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^`]*\})?`", cells[name_col])
            if m:
                names[m.group(1)] = cells[type_col]
    if "fd_requests_total" not in names:
        fail("docs/metrics.md", f"no metrics table could be read (found {sorted(names)[:5]}...)")
    return names


PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan", "Inf", "NaN", "atan2"}


def metric_names(expr):
    """The metric names a PromQL expression selects (Grafana's $variables and Flagger's {{ }} allowed)."""
    label_values = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)[^,]*,\s*\w+\s*\)\s*", expr)
    if label_values:
        return [label_values.group(1)]
    e = re.sub(r"\{\{.*?\}\}", "x", expr)                         # Flagger's template variables
    e = re.sub(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", '""', e)  # strings
    e = re.sub(r"\{[^{}]*\}", "{}", e)                            # label matchers
    e = re.sub(r"\[[^\]]*\]", "[]", e)                            # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)                            # Grafana's variables
    return [m.group(1) for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\s*\()(?![\w])", e)
            if m.group(1) not in PROMQL_WORDS]


def check_metric_names(where, expressions, documented):
    if not expressions:
        fail(where, "no query found")
    for expr in expressions:
        names = metric_names(expr)
        if not names:
            fail(where, f"no metric name found in {expr!r}")
        for name in names:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name in documented or (base != name and documented.get(base) == "histogram"):
                continue
            fail(where, f"metric {name} (in {expr.strip()!r}) is not in docs/metrics.md")


def dashboard_queries(dashboard):
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))
    walk(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def main(render_dir):
    documented = documented_metrics()
    rendered = {name: load(os.path.join(render_dir, f"{name}.yaml")) for name in ("base", "dev", "prod")}
    for name, docs in rendered.items():
        where = f"{name} (rendered)"
        hpa = one(docs, "HorizontalPodAutoscaler", "frontdoor", where)
        if hpa:
            check_hpa(where + " HPA", hpa, exact_replicas=name in ("base", "prod"))
            check_metric_names(where + " HPA", [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]
                                                if m["type"] == "Pods"], documented)
        ports = check_deployment(where, docs)
        if ports:
            check_network(where, docs, ports)

    # The Grafana dashboard: valid JSON, shipped as the file, every query on documented metrics.
    path = os.path.join(KUBE, "grafana", "frontdoor-dashboard.json")
    try:
        with open(path) as f:
            text = f.read()
        dashboard = json.loads(text)
    except (OSError, ValueError) as e:
        fail(path, f"not a readable JSON dashboard: {e}")
    else:
        cm = one(rendered["prod"], "ConfigMap", "frontdoor-dashboard", "prod (rendered)")
        if cm:
            expect("prod (rendered) ConfigMap frontdoor-dashboard", "label grafana_dashboard",
                   cm["metadata"].get("labels", {}).get("grafana_dashboard"), "1")
            if cm["data"].get("frontdoor-dashboard.json") != text:
                fail("prod (rendered) ConfigMap frontdoor-dashboard", "does not hold frontdoor-dashboard.json")
        if not dashboard.get("panels"):
            fail(path, "the dashboard has no panels")
        check_metric_names(path, dashboard_queries(dashboard), documented)

    # Flagger: the Canary's metric templates and inline queries.
    prod = rendered["prod"]
    canary = one(prod, "Canary", "frontdoor", "prod (rendered)")
    if canary:
        templates = {t["metadata"]["name"]: t for t in prod if t["kind"] == "MetricTemplate"}
        exprs = []
        for metric in canary["spec"]["analysis"].get("metrics", []):
            if "query" in metric:
                exprs.append(metric["query"])
            elif "templateRef" in metric:
                t = templates.get(metric["templateRef"]["name"])
                if not t:
                    fail("prod (rendered) Canary", f"metric {metric['name']}: no MetricTemplate {metric['templateRef']['name']}")
                else:
                    exprs.append(t["spec"]["query"])
        check_metric_names("prod (rendered) Canary metrics", exprs, documented)
        expect("prod (rendered) Canary", "spec.autoscalerRef.name", canary["spec"].get("autoscalerRef", {}).get("name"), "frontdoor")

    # prometheus-adapter: the rule serves the metric the HPA names.
    adapter = load(os.path.join(render_dir, "prometheus-adapter.yaml"))
    cm = one(adapter, "ConfigMap", None, "prometheus-adapter (rendered)")
    if cm:
        rules = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
        check_metric_names("prometheus-adapter rules", [r["seriesQuery"] for r in rules], documented)
        served = {r["name"]["as"] for r in rules}
        if "http_requests_per_second" not in served:
            fail("prometheus-adapter rules", f"serve {sorted(served)}, not http_requests_per_second (the HPA's Pods metric)")

    for f in failures:
        print("FAIL " + f, file=sys.stderr)
    print(f"kit check: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
