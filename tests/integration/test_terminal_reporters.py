"""``memscope table``, ``tree`` and ``summary``: the sites at the peak, from the analysis state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memscope.analyzers.log_builder import LogBuilder, write_log
from memscope.analyzers.peak_report import build_tree, sites_at, summarize
from memscope.analyzers.runner import connect_analyzed
from memscope.analyzers.stacks import resolver
from memscope.analyzers.state import fold_tables
from memscope.analyzers.views import connect_tables, use_state
from memscope.commands.main import main


def two_processes() -> LogBuilder:
    """pid 10 peaks at 450 B (t=3); both together peak at 1350 B (t=6)."""
    b = LogBuilder()
    b.process(10, ts_ns=0, argv=["app.py", "--x"])
    b.process(20, ts_ns=0, argv=["worker.py"])
    main_ = ("main", "app.py", 1)
    s_a = b.stack(10, [main_, ("load", "app.py", 5)])
    s_b = b.stack(10, [main_, ("load", "app.py", 5), ("parse", "app.py", 9)])
    s_c = b.stack(10, [main_, ("other", "app.py", 20)])
    s_w = b.stack(20, [("work", "worker.py", 3)])
    b.alloc(10, ts_ns=1, address=0xA, size=100, stack_id=s_a)
    b.alloc(10, ts_ns=2, address=0xB, size=300, stack_id=s_b)
    b.alloc(10, ts_ns=3, address=0xC, size=50, stack_id=s_c)
    b.free(10, ts_ns=4, address=0xB)
    b.alloc(10, ts_ns=5, address=0xD, size=200, stack_id=s_b)
    b.alloc(20, ts_ns=6, address=0xE, size=1000, stack_id=s_w)
    b.free(20, ts_ns=7, address=0xE)
    return b


@pytest.fixture()
def con():
    tables = two_processes().tables()
    connection = connect_tables(tables)
    use_state(connection, fold_tables(tables).tables())
    yield connection
    connection.close()


def test_sites_at_the_peak_and_the_end(con) -> None:
    rows = lambda sites: [(s.pid, s.bytes, s.blocks) for s in sites]  # noqa: E731
    assert rows(sites_at(con, "peak")) == [(20, 1000, 1), (10, 200, 1), (10, 100, 1), (10, 50, 1)]
    assert rows(sites_at(con, "peak", pid=10)) == [(10, 300, 1), (10, 100, 1), (10, 50, 1)]
    assert rows(sites_at(con, "end")) == [(10, 200, 1), (10, 100, 1), (10, 50, 1)]
    with pytest.raises(ValueError, match="at must be one of"):
        sites_at(con, "later")


def test_tree_of_the_biggest_sites(con) -> None:
    stacks = resolver(con)
    root = build_tree(sites_at(con, "peak", pid=10), stacks, biggest=2)
    assert (root.label, root.bytes) == ("<ROOT>", 450)  # every site, the shown ones below
    (main_,) = root.ordered()
    assert (main_.label, main_.bytes) == ("main (app.py:1)", 400)
    (load,) = main_.ordered()
    assert (load.label, load.bytes, load.blocks) == ("load (app.py:5)", 400, 2)
    assert [(c.label, c.bytes) for c in load.ordered()] == [("parse (app.py:9)", 300)]
    # Over both processes, each process is a branch.
    both = build_tree(sites_at(con, "peak"), stacks, 10, {10: "app.py --x", 20: "worker.py"})
    assert [(c.label, c.bytes) for c in both.ordered()] == [
        ("process 20 (worker.py)", 1000),
        ("process 10 (app.py --x)", 350),
    ]


def test_summary_counts_total_and_own_bytes(con) -> None:
    rows = summarize(sites_at(con, "peak", pid=10), resolver(con))
    assert [(r.function, r.total, r.own, r.blocks) for r in rows] == [
        ("main", 450, 0, 3),
        ("load", 400, 100, 2),
        ("parse", 300, 300, 1),
        ("other", 50, 50, 1),
    ]


@pytest.fixture()
def log(tmp_path: Path) -> Path:
    return write_log(two_processes().tables(), tmp_path / "run" / "events")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tree_root_is_the_peak_that_stats_reports(log: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "tree", str(log), "--json")
    assert code == 0
    tree = json.loads(out)["tree"]
    code, out, _ = run_cli(capsys, "stats", str(log), "--json")
    assert tree["bytes"] == json.loads(out)["total"]["peak_memory"] == 1350
    assert [c["location"] for c in tree["children"]] == [
        "process 20 (worker.py)",
        "process 10 (app.py --x)",
    ]


def test_commands_print_plain_text_when_piped(log: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "tree", str(log), "--pid", "10")
    assert code == 0 and "\x1b" not in out
    assert "memory at the peak of process 10 (app.py --x)" in out
    assert "300 B (66.67%) parse (app.py:9)" in out
    code, out, _ = run_cli(capsys, "table", str(log), "--at", "end")
    assert code == 0 and "\x1b" not in out
    lines = [line.split() for line in out.splitlines()[2:]]
    assert [line[:2] for line in lines] == [["200", "B"], ["100", "B"], ["50", "B"]]
    assert lines[0][-2:] == ["(app.py:9)", "10"] or "parse" in " ".join(lines[0])
    code, out, _ = run_cli(capsys, "summary", str(log), "--pid", "10", "--json")
    assert [(r["function"], r["total"], r["own"]) for r in json.loads(out)["rows"]][:2] == [
        ("main", 450, 0),
        ("load", 400, 100),
    ]


def test_bad_input_is_one_line(log: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "tree", str(log), "--pid", "99")
    assert code == 2 and "no process 99" in err and len(err.splitlines()) == 1
    code, out, err = run_cli(capsys, "table", str(tmp_path / "nothing"))
    assert code == 2 and "cannot read log" in err and len(err.splitlines()) == 1


def test_names_from_the_program_are_not_markup(tmp_path: Path, capsys) -> None:
    b = LogBuilder()
    b.process(1, ts_ns=0, argv=["[red]evil[/].py"])
    site = b.stack(1, [("[bold red]x[/]", "a[b].py", 2)])
    b.alloc(1, ts_ns=1, address=0x1, size=64, stack_id=site)
    log = write_log(b.tables(), tmp_path / "events")
    code, out, _ = run_cli(capsys, "tree", str(log))
    assert code == 0 and "[bold red]x[/] (a[b].py:2)" in out
    code, out, _ = run_cli(capsys, "table", str(log), "--pid", "1")
    assert "[bold red]x[/] (a[b].py:2)" in out and "process 1 ([red]evil[/].py)" in out
    code, out, _ = run_cli(capsys, "summary", str(log), "--pid", "1")
    assert "[bold red]x[/] at a[b].py" in out and "process 1 ([red]evil[/].py)" in out
    connect_analyzed(log).close()  # the checkpoint the commands wrote is readable


class _Terminal:
    """A stdout that says it is a terminal (what rich colours)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("not a real terminal")


def test_a_terminal_gets_colour(log: Path, monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for verb in ("tree", "table", "summary"):
        fake = _Terminal()
        monkeypatch.setattr("sys.stdout", fake)
        assert main([verb, str(log)]) == 0
        text = "".join(fake.parts)
        assert "\x1b[" in text, verb
        assert "parse" in text


def test_on_a_traced_run_the_tree_root_is_the_stats_peak(tmp_path: Path, capsys) -> None:
    code = (
        "import threading\n"
        "def grow(n): return [bytes(100) for _ in range(n)]\n"
        "keep = grow(20000)\n"
        "t = threading.Thread(target=grow, args=(50000,)); t.start(); t.join()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSCOPE_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--no-report",
            "--out",
            str(tmp_path / "run"),
            "-c",
            code,
        ],
        check=True,
        env=env,
        timeout=120,
        capture_output=True,
    )
    _, out, _ = run_cli(capsys, "tree", str(tmp_path / "run"), "--json")
    root = json.loads(out)["tree"]
    _, out, _ = run_cli(capsys, "stats", str(tmp_path / "run"), "--json")
    peak = json.loads(out)["total"]["peak_memory"]
    assert root["bytes"] == peak > 20000 * 133  # bytes(100) is one block of 133 bytes
    _, out, _ = run_cli(capsys, "summary", str(tmp_path / "run"), "--json")
    rows = {r["function"]: r for r in json.loads(out)["rows"]}
    assert rows["grow.<locals>.<listcomp>"]["own"] >= 20000 * 133
