"""What the terminal reporters show: the allocation sites alive at the peak (or the end).

Read from the analysis state (the ``peak_sites`` and ``sites`` views, see
:mod:`memscope.analyzers.views`), with stacks resolved by
:class:`memscope.analyzers.stacks.StackResolver` only for the sites a report lists:

* :func:`sites_at`: the sites and what each held at the moment chosen, largest first. At the
  peak, over the whole log it is the moment all processes together held the most
  (``all_peak_bytes``); with ``pid`` that process's own peak. At the end, what was still
  alive when the log ends (``live_bytes``).
* :func:`build_tree`: the largest sites as a tree of call stacks (outermost frame first);
  every node holds the bytes of the shown sites below it, the root holds every site's.
* :func:`summarize`: per function (``function``, ``file``), the bytes of the sites whose
  stack holds it (``total``, counted once per site even in recursion) and of those where it
  is the innermost frame (``own``), like memray's ``summary``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memscope.analyzers.stacks import Frame, StackResolver

#: The moments a report can show.
MOMENTS = ("peak", "end")
NO_FRAME: Frame = ("<no Python frame>", "", 0)


@dataclass(frozen=True)
class Site:
    """One allocation site (a process's stack and allocator domain) at the chosen moment."""

    pid: int
    stack_id: int
    domain: str
    bytes: int
    blocks: int


def sites_at(con: Any, at: str = "peak", pid: int | None = None) -> list[Site]:
    """The sites holding memory at ``at`` (``peak`` or ``end``), largest first.

    Raises:
        ValueError: ``at`` is not one of :data:`MOMENTS`.
    """
    if at not in MOMENTS:
        raise ValueError(f"at must be one of {', '.join(MOMENTS)}, not {at!r}")
    if at == "end":
        source, size, count = "sites", "live_bytes", "live_blocks"
    elif pid is None:
        source, size, count = "peak_sites", "all_peak_bytes", "all_peak_blocks"
    else:
        source, size, count = "peak_sites", "bytes", "blocks"
    where = f"{size} > 0" + ("" if pid is None else " AND pid = $pid")
    rows = con.execute(
        f"SELECT pid, stack_id, domain, {size}, {count} FROM {source} WHERE {where} "
        f"ORDER BY {size} DESC, pid, stack_id, domain",
        {} if pid is None else {"pid": int(pid)},
    ).fetchall()
    return [Site(int(p), int(s), str(d), int(b), int(n)) for p, s, d, b, n in rows]


def program_names(con: Any) -> dict[int, str]:
    """Each process's command line, for labels (``pid -> "app.py --x"``)."""
    rows = con.execute("SELECT pid, argv FROM processes ORDER BY pid").fetchall()
    return {int(pid): " ".join(argv or []) for pid, argv in rows}


def location(frame: Frame) -> str:
    """``function (file:line)`` of a frame."""
    function, filename, lineno = frame
    return function if not filename else f"{function} ({filename}:{lineno})"


def innermost(resolver: StackResolver, site: Site) -> str:
    """The site's innermost frame as a location."""
    return resolver.location(site.pid, site.stack_id) or NO_FRAME[0]


@dataclass
class Node:
    """A node of the call tree: a frame, the bytes and blocks of the shown sites below it."""

    label: str
    bytes: int = 0
    blocks: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def child(self, label: str) -> Node:
        """The child with ``label``, created empty on first use."""
        found = self.children.get(label)
        if found is None:
            found = self.children[label] = Node(label)
        return found

    def ordered(self) -> list[Node]:
        """The children, largest first."""
        return sorted(self.children.values(), key=lambda n: (-n.bytes, n.label))


def build_tree(
    sites: Sequence[Site],
    resolver: StackResolver,
    biggest: int = 10,
    programs: dict[int, str] | None = None,
) -> Node:
    """The ``biggest`` sites as a call tree (see the module docstring).

    With ``programs`` naming more than one process, each process is a branch of the root.
    """
    root = Node("<ROOT>", sum(s.bytes for s in sites), sum(s.blocks for s in sites))
    split = programs is not None and len({s.pid for s in sites}) > 1
    for site in sites[:biggest]:
        node = root
        if split:
            name = (programs or {}).get(site.pid, "")
            node = node.child(f"process {site.pid}" + (f" ({name})" if name else ""))
            node.bytes += site.bytes
            node.blocks += site.blocks
        frames = list(reversed(resolver.frames(site.pid, site.stack_id))) or [NO_FRAME]
        for frame in frames:
            node = node.child(location(frame))
            node.bytes += site.bytes
            node.blocks += site.blocks
    return root


@dataclass(frozen=True)
class FunctionRow:
    """One line of the summary."""

    function: str
    filename: str
    total: int
    own: int
    blocks: int


def summarize(sites: Sequence[Site], resolver: StackResolver) -> list[FunctionRow]:
    """Per function, its total and own bytes at the moment (module docstring), largest first."""
    total: dict[tuple[str, str], int] = {}
    own: dict[tuple[str, str], int] = {}
    blocks: dict[tuple[str, str], int] = {}
    for site in sites:
        frames = resolver.frames(site.pid, site.stack_id) or (NO_FRAME,)
        seen = {(fn, file) for fn, file, _ in frames}
        for key in seen:
            total[key] = total.get(key, 0) + site.bytes
            blocks[key] = blocks.get(key, 0) + site.blocks
        first = (frames[0][0], frames[0][1])
        own[first] = own.get(first, 0) + site.bytes
    rows = [
        FunctionRow(fn, file, total[(fn, file)], own.get((fn, file), 0), blocks[(fn, file)])
        for fn, file in total
    ]
    return sorted(rows, key=lambda r: (-r.total, -r.own, r.function, r.filename))
