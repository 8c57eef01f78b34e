"""The project's shape: pyproject and environment.yml agree; the top level holds only what it should."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"notebooks", "aulib", "reports", "environment.yml", "noxfile.py", "tests", "README.md",
             "pyproject.toml", ".ci", ".gitignore"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pip_section(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(r"\s+- pip:\s*$", line):
            inside = True
        elif inside and re.match(r"\s{6,}- ", line):
            lines.append(line.strip()[2:].strip())
        elif inside and line.strip() and not line.startswith(" " * 6):
            inside = False
    return lines


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env_text = (ROOT / "environment.yml").read_text()
    pip = [r for r in _pip_section(env_text) if not r.startswith("-e")]
    have = {_name(r): r.replace(" ", "") for r in pip}
    assert have == wanted, f"environment.yml and pyproject.toml differ: {set(have.items()) ^ set(wanted.items())}"
    assert "python=3.11" in env_text and "- -e ." in env_text


def test_top_level_layout():
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    top = {f.split("/", 1)[0] for f in files.splitlines()}
    assert top <= TOP_LEVEL, f"unexpected top-level entries: {sorted(top - TOP_LEVEL)}"
    for sub in ("data", "models", "losses", "methods", "train", "eval", "viz"):
        assert (ROOT / "aulib" / sub / "__init__.py").is_file(), f"aulib/{sub} is not a package"
