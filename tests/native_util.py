"""Helpers of the native-mode tests: run programs with the shim, build a small C library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from memscope.producer.native_mode import library_path, preload_env

TIMEOUT_S = 120


def memscope_run(
    tmp_path: Path, source: str, *extra: str
) -> tuple[subprocess.CompletedProcess, Path]:
    """``memscope run --native`` on ``source`` with arguments ``extra``; (process, run dir)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(source))
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--native",
            "--out",
            str(out),
            str(script),
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc, out


def preloaded_python(
    tmp_path: Path, source: str, env: dict | None = None, preload: bool = True
) -> subprocess.CompletedProcess:
    """Run ``source`` in a Python started with the shim preloaded (no ``memscope run``)."""
    script = tmp_path / "capture_prog.py"
    script.write_text(textwrap.dedent(source))
    base = {**os.environ, **(env or {})}
    base.pop("LD_PRELOAD", None)
    run_env = preload_env(base) if preload else base
    run_env.pop("MEMSCOPE_NATIVE", None)
    run_env["PYTHONPATH"] = str(Path(__file__).parent)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=run_env,
    )


def last_json(proc: subprocess.CompletedProcess) -> dict:
    """The JSON document on the last line of a program's stdout."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


C_LIBRARY = r"""
#include <stdlib.h>
#include <string.h>

void *ms_test_leak(size_t n) { char *p = malloc(n); if (p) memset(p, 1, n); return p; }

int ms_test_double_free(void)
{
    char *volatile p = malloc(64);
    p[0] = 1;
    free(p);
    free(p); /* the bug under test: the shim must block it */
    return 0;
}

int ms_test_invalid_free(void)
{
    static char buffer[64];
    char *volatile q = buffer + 16;
    free(q); /* never returned by malloc */
    return 0;
}
"""


def build_c_library(tmp_path: Path) -> Path:
    """Compile :data:`C_LIBRARY` into ``libmstest.so``."""
    source = tmp_path / "mstest.c"
    source.write_text(C_LIBRARY)
    target = tmp_path / "libmstest.so"
    subprocess.run(
        ["cc", "-O0", "-shared", "-fPIC", "-o", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return target


def shim() -> Path:
    """The shim shipped with the installed memscope."""
    return library_path()
