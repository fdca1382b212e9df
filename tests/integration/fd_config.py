"""Configs for the end-to-end tests: plain dicts (manifest, make_config) and the YAML subset they need."""
from __future__ import annotations

import json


# --------------------------------------------------------------------------------------------
# YAML (the subset our configs need) and config building
# --------------------------------------------------------------------------------------------

def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(str(v))  # a JSON string is a valid double-quoted YAML scalar


def to_yaml(obj, indent: int = 0) -> str:
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, list) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, (list, dict)):
                out.append("%s%s: %s\n" % (pad, k, "[]" if isinstance(v, list) else "{}"))
            else:
                out.append("%s%s: %s\n" % (pad, k, _scalar(v)))
        return "".join(out)
    if isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                inner = to_yaml(item, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            else:
                out.append("%s- %s\n" % (pad, _scalar(item)))
        return "".join(out)
    return pad + _scalar(obj) + "\n"


def manifest(project: str, module: str, endpoints: list, environment: str = "*", **extra) -> dict:
    m = {"project": project, "module": module, "environment": environment,
         "endpoints": [{"address": getattr(e, "address", e)} for e in endpoints]}  # an upstream or "host:port"
    m.update(extra)
    return m


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def make_config(manifests: list, **overrides) -> dict:
    """A complete config on 127.0.0.1:0 with test-friendly defaults; overrides merge by section."""
    cfg = {
        "server": {"workers": 1, "drain_timeout": "5s", "max_connections": 1000},
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "default_environment": "production"}],
        "limits": {"max_request_line_bytes": "8KiB", "max_header_bytes": "32KiB", "max_header_count": 100,
                   "max_body_bytes": 0},
        "timeouts": {"client_header": "5s", "client_idle": "10s", "client_body": "10s",
                     "upstream_connect": "2s", "upstream_response": "10s", "request_total": "0s"},
        "upstream_pool": {"max_idle_per_endpoint": 16, "idle_timeout": "30s"},
        "routing": {"environment_header": "X-Environment"},
        "logging": {"level": "info", "access_log": {"destination": "off", "format": "text"}},
        "manifests": manifests,
    }
    return _merge(cfg, overrides)
