"""deploy/: the Kubernetes kit's configuration (deploy/kubernetes/base) passes `frontdoor check`, its probes
point at the admin listener it configures, and the Deployment leaves time for the drain; the Dockerfile's
runtime stage installs every library the binary links, and the build context leaves the build trees out."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

import fdtest
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


# --- The image ------------------------------------------------------------------------------------

# In debian:12-slim already (Essential or pulled in by apt itself).
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
# The sanitizers' runtimes: linked by the ASan/UBSan test build only, never by the image's release build.
SANITIZER_RUNTIMES = ("libasan", "libubsan", "liblsan", "libtsan", "libhwasan")


def _runtime_packages():
    """The packages `apt-get install` names in the Dockerfile's last stage (the runtime image)."""
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    stages = re.split(r"(?im)^FROM\s", text)
    packages = set()
    for m in re.finditer(r"apt-get\s+install\s+([^&;|\n]*)", stages[-1]):
        packages.update(w for w in m.group(1).split() if not w.startswith("-"))
    return packages


def _depends_closure(packages):
    """`packages` and everything they pull in through Depends/PreDepends (any alternative counts)."""
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"] + sorted(packages),
                         capture_output=True, text=True, timeout=60).stdout
    closure = set(packages)
    for line in out.splitlines():
        m = re.match(r"\s*\|?(?:Pre)?Depends:\s*<?([^\s>]+)>?", line)
        if m:
            closure.add(m.group(1).split(":")[0])
        elif line.startswith("    "):                     # a package providing the virtual one above
            closure.add(line.strip().split(":")[0])
    return closure


def _needed_libraries(binary):
    """soname -> path, for every shared library the binary loads (ldd: its NEEDED and theirs)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    return libs


def _owners(paths):
    """path -> the Debian package that ships it, in one dpkg call (merged /usr: the path as ldd gives
    it, with its directory resolved, and fully resolved)."""
    candidates = {p: list(dict.fromkeys([p, os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p)),
                                         os.path.realpath(p)])) for p in paths}
    everything = sorted({c for cs in candidates.values() for c in cs})
    out = subprocess.run(["dpkg", "-S"] + everything, capture_output=True, text=True, timeout=30).stdout
    shipped = {}
    for line in out.splitlines():
        package, _, path = line.partition(": ")
        shipped[path.strip()] = package.split(",")[0].split(":")[0].strip()
    return {p: next((shipped[c] for c in cs if c in shipped), None) for p, cs in candidates.items()}


def test_the_runtime_image_has_every_library_the_binary_needs():
    for tool in ("dpkg", "apt-cache", "ldd"):
        if shutil.which(tool) is None:
            pytest.skip(tool + " is not installed (not a Debian host)")
    binary = fdtest.require_binary()
    libs = _needed_libraries(binary)
    assert libs, "ldd found no shared library in " + binary
    shipped_by = _owners(libs.values())
    owners = {}
    for soname, path in libs.items():
        package = shipped_by[path]
        assert package, "no Debian package ships %s (%s)" % (soname, path)
        if package not in BASE_IMAGE_PACKAGES and not package.startswith(SANITIZER_RUNTIMES):
            owners.setdefault(package, []).append(soname)
    installed = _depends_closure(_runtime_packages())
    missing = {p: s for p, s in owners.items() if p not in installed}
    assert not missing, "the Dockerfile's runtime stage does not install (directly or as a dependency): %s" % missing


def test_the_build_context_leaves_out_the_build_trees():
    # `COPY . .` must not bring a build/ whose CMakeCache.txt names another source directory.
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        patterns = {line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")}
    for pattern in ("build*", ".git", "bench/runs", "**/__pycache__"):
        assert pattern in patterns, ".dockerignore does not exclude " + pattern
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        dockerfile = f.read()
    assert not re.search(r"-B\s+build\b", dockerfile), "the image configures into ./build, which the context may hold"
