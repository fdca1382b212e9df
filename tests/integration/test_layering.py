"""tests/layering.py: the repository passes, and a tree with an upward or sideways include fails."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "layering.py"


def run(cwd):
    (pathlib.Path(cwd) / "src").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(SCRIPT)], cwd=cwd, capture_output=True, text=True, timeout=60)


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_repository_layers_hold():
    result = run(ROOT)
    assert result.returncode == 0, result.stderr


def test_upward_include_names_file_line_and_include(tmp_path):
    write(tmp_path, "include/frontdoor/core/error.hpp", "#pragma once\n")
    write(tmp_path, "include/frontdoor/upstream/connection.hpp", "#pragma once\n")
    write(tmp_path, "src/upstream/connection.cpp",
          '#include "frontdoor/upstream/connection.hpp"\n#include "frontdoor/server/session.hpp"\n')
    result = run(tmp_path)
    assert result.returncode == 1
    assert "src/upstream/connection.cpp:2:" in result.stderr
    assert '"frontdoor/server/session.hpp"' in result.stderr


def test_sibling_include_and_core_including_the_project_fail(tmp_path):
    write(tmp_path, "include/frontdoor/http/message_head.hpp", '#include "frontdoor/io/redis_client.hpp"\n')
    write(tmp_path, "include/frontdoor/core/snapshot.hpp", '#include "frontdoor/config/config.hpp"\n')
    result = run(tmp_path)
    assert result.returncode == 1
    assert "include/frontdoor/http/message_head.hpp:1: http may not include a sibling area" in result.stderr
    assert "include/frontdoor/core/snapshot.hpp:1: core may not include a higher area" in result.stderr


def test_unknown_area_is_reported(tmp_path):
    write(tmp_path, "include/frontdoor/gadgets/thing.hpp", "#pragma once\n")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "area 'gadgets' is in no layer" in result.stderr
