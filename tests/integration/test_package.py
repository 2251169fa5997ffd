"""The package installs as one import package and imports without side effects."""

import importlib.metadata
import subprocess
import sys
import threading
from pathlib import Path

import memscope


def test_public_api_is_explicit():
    assert "init" in memscope.__all__
    assert "track_var" in memscope.__all__
    assert memscope.__version__ == importlib.metadata.version("memscope")


def test_only_memscope_lands_in_site_packages():
    # Look in the site-packages memscope was imported from (the source tree's egg-info,
    # reachable from the working directory, lists source paths instead).
    site_packages = Path(memscope.__file__).resolve().parent.parent
    (dist,) = [
        d for d in importlib.metadata.distributions(path=[str(site_packages)])
        if d.metadata["Name"] == "memscope"
    ]
    top_levels = {f.parts[0] for f in dist.files or [] if f.suffix in (".py", ".so")}
    assert top_levels == {"memscope"}, top_levels


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
