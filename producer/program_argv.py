"""The command line a traced process records in ``processes.argv``: its program, as typed.

``sys.argv`` loses what ran: while ``sitecustomize`` runs (where ``memscope run`` starts
tracing) a ``python -m pkg a`` process has ``sys.argv == ['-m', 'a']`` and ``python -c CODE a``
has ``['-c', 'a']``. :func:`program_argv` puts the module's name (or the code) back from
``sys.orig_argv``: ``['-m', 'pkg', 'a']``, ``['-c', 'CODE', 'a']``; a script keeps
``sys.argv`` as it is. After runpy has put a module's file in ``argv[0]``, the module's
name is still what is recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Interpreter options whose value is the next word (``python -W error -m pkg``).
_VALUED = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def launched_as(orig_argv: Sequence[str]) -> tuple[str, str] | None:
    """``("-m", module)`` or ``("-c", code)`` when the interpreter was started that way."""
    words = list(orig_argv[1:])
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--" or word == "-" or not word.startswith("-"):
            return None  # a script (or stdin): no -m / -c
        if word in _VALUED:
            i += 2
            continue
        if not word.startswith("--"):
            # A cluster of one-letter flags may end in m or c: -Im pkg, -Bc CODE, -mpkg.
            for at, letter in enumerate(word[1:], start=1):
                if letter in "mc":
                    value = word[at + 1 :] or (words[i + 1] if i + 1 < len(words) else None)
                    return None if value is None else (f"-{letter}", value)
                if letter in "WX":  # -Werror: the rest of the word is the value
                    break
        i += 1
    return None


def program_argv(
    argv: Sequence[str] | None = None, orig_argv: Sequence[str] | None = None
) -> list[str]:
    """This process's program and arguments: ``sys.argv`` with ``-m``/``-c``'s value put back."""
    args = [str(a) for a in (sys.argv if argv is None else argv)]
    orig = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    how = launched_as(orig)
    if how is None or not args:
        return args
    if args[0] == how[0] or how[0] == "-m":  # (runpy may have put the module's file there)
        return [how[0], how[1], *args[1:]]
    return args
