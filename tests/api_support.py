"""Helpers of the API and run-command tests: run traced programs, read their logs."""

import os
import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).parent / "programs"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    env.update(extra)
    return env


def python(args, timeout=120, cwd=None, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=clean_env() if env is None else env,
        check=False,
        **kwargs,
    )


def memscope_run(args, timeout=120, cwd=None, **kwargs):
    return python(["-m", "memscope", "run", *args], timeout=timeout, cwd=cwd, **kwargs)


def table(log_dir, name, columns=None):
    """Rows of one log table as a list of dicts."""
    from memscope.eventlog.log import open_log

    return open_log(log_dir).dataset(name).to_table(columns=columns).to_pylist()


def arrow_table(log_dir, name):
    from memscope.eventlog.log import open_log

    return open_log(log_dir).dataset(name).to_table()


def source_line(path, marker):
    """The 1-based line of ``path`` holding ``marker``."""
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker} not in {path}")
