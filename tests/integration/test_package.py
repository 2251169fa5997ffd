"""The package installs as one import package and imports without side effects."""

import importlib.metadata
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

import memscope

ROOT = Path(__file__).resolve().parents[2]
#: The subpackages, bottom to top (docs/architecture.md).
LAYERS = (
    "config",
    "protocol",
    "producer",
    "eventlog",
    "broker",
    "analyzers",
    "exporters",
    "api",
    "commands",
    "integrations",
)


def test_public_api_is_explicit():
    assert "init" in memscope.__all__
    assert "track_var" in memscope.__all__
    assert memscope.__version__ == importlib.metadata.version("memscope")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The files of the wheel a user installs, built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of the tracked files: a build/ left in the checkout cannot leak into it.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    pip_wheel += ["--no-build-isolation", "-w", str(out), str(source)]
    subprocess.run(pip_wheel, check=True, timeout=600)
    (wheel,) = out.glob("memscope-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_only_memscope_lands_in_site_packages(wheel_files):
    top_levels = {
        name.split("/")[0] for name in wheel_files if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_levels == {"memscope"}, top_levels


def test_the_wheel_holds_every_layer_and_its_data(wheel_files):
    packages = {name.rsplit("/", 1)[0] for name in wheel_files if name.endswith("/__init__.py")}
    assert packages == {"memscope"} | {f"memscope/{p}" for p in LAYERS}
    for needed in (
        "memscope/errors.py",
        "memscope/units.py",
        "memscope/version.py",
        "memscope/config/default.toml",
        "memscope/py.typed",
        "memscope/analyzers/schemas/memory_analysis.schema.json",
        "memscope/exporters/templates/dashboard.html",
        "memscope/exporters/templates/flame.js",
    ):
        assert needed in wheel_files, needed
    built = {name for name in wheel_files if name.endswith(".so")}
    for module in (
        "producer/_tracer",
        "producer/_deaths",
        "producer/_memscope_preload",
        "protocol/_rec1",
        "analyzers/_fold",
        "analyzers/_statfold",
    ):
        assert any(name.startswith(f"memscope/{module}.") for name in built), module
    assert not any(
        name.startswith(("memscope/tests/", "memscope/bench/", "memscope/examples/"))
        for name in wheel_files
    )


def test_import_starts_nothing():
    code = (
        "import sys, threading; import memscope; "
        "assert threading.active_count() == 1; "
        "heavy = {'pyarrow', 'zmq', 'duckdb', 'memscope.producer._tracer'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert threading.active_count() >= 1


def test_cli_help_lists_every_verb():
    out = subprocess.run(
        [sys.executable, "-m", "memscope", "--help"], capture_output=True, text=True, check=False
    )
    for verb in ("run", "broker", "analyze", "report", "dashboard", "query", "stats"):
        assert verb in out.stdout
