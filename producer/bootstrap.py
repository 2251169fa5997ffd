"""The ``sitecustomize`` that makes every Python process of a ``memscope run`` trace itself.

``memscope run`` writes :data:`SITECUSTOMIZE` into a fresh directory and puts that directory
first on the traced program's ``PYTHONPATH``. Python imports ``sitecustomize`` at start-up, so
the program, its ``spawn``/``forkserver`` multiprocessing children and any Python subprocess
that inherits the environment call :func:`memscope.init` before running anything. The
broker's address reaches them through ``MEMSCOPE_BROKER_ADDRESS``. The bootstrap then removes
its directory from ``sys.path`` (the environment keeps it for children) and runs the next
``sitecustomize`` on the path, if any, so a site's own customization still happens.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

SITECUSTOMIZE = '''\
"""memscope run: trace this Python process, then run any other sitecustomize on the path."""


def _memscope_bootstrap():
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:  # first: a SIGTERM during the start-up waits for the session (producer/core/tr_term.c)
        from memscope.producer import _tracer

        _tracer.term_install(-1)
    except ImportError:
        _tracer = None
    try:
        import memscope

        memscope.init()
    except ModuleNotFoundError as exc:
        if exc.name != "memscope":  # another interpreter without memscope: stay quiet
            sys.stderr.write(f"memscope: pid {os.getpid()} is not traced: {exc}\\n")
    except Exception as exc:  # never stop the program because tracing could not start
        sys.stderr.write(f"memscope: pid {os.getpid()} is not traced: {exc}\\n")
    if _tracer is not None:
        _tracer.term_release()  # (when tracing did not start: SIGTERM's own action again)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


_memscope_bootstrap()
del _memscope_bootstrap
'''


def make_bootstrap_dir(parent: str | None = None) -> Path:
    """A new directory holding the bootstrap ``sitecustomize.py``; the caller removes it."""
    directory = Path(tempfile.mkdtemp(prefix="memscope-bootstrap-", dir=parent))
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return directory
