"""Flame graph models (analyzers/flame.py), the static SVG and the ``flamegraph`` verb."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from memscope.analyzers.flame import FlameError, FlameOptions, build_flame
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.runner import connect_tables_analyzed
from memscope.exporters import load_reports
from memscope.exporters.flame_html import flame_page
from memscope.exporters.flame_svg import FlameGraphSvg
from memscope.exporters.sample_reports import HOSTILE_NAMES, write_sample_reports

HOSTILE = "</script><img src=x onerror=alert(1)>"
MAIN = ("main", "app.py", 1)
LOAD = ("load", "app.py", 7)
PARSE = ("parse", HOSTILE, 9)
CACHE = (HOSTILE, "cache.py", 3)
# (ts_ns, address, size or None for a free, stack name, tid)
EVENTS = [
    (100, 0x100, 1000, "load", 1),
    (110, 0x200, 3000, "parse", 1),
    (120, 0x300, 500, "cache", 2),
    (130, 0x400, 7000, "parse", 2),
    (200, 0x400, None, "", 2),
    (210, 0x200, None, "", 1),
    (300, 0x500, 2500, "cache", 1),
    (310, 0x600, 4000, "load", 2),
    (400, 0x100, None, "", 1),
    (500, 0x700, 100, "parse", 1),
]


def _log() -> tuple[LogBuilder, dict[str, int]]:
    b = LogBuilder()
    b.process(1, 0, argv=["app.py"], exit_ts_ns=600)
    stacks = {
        "load": b.stack(1, [MAIN, LOAD]),
        "parse": b.stack(1, [MAIN, LOAD, PARSE]),
        "cache": b.stack(1, [MAIN, CACHE]),
    }
    for ts, address, size, where, tid in EVENTS:
        if size is None:
            b.free(1, ts, address, tid=tid)
        else:
            b.alloc(1, ts, address, size, stack_id=stacks[where], tid=tid)
    return b, stacks


def _alive(at: int, tid: int | None = None, born_after: int = -1) -> dict[str, int]:
    """Bytes per stack name of the blocks alive at ``at`` (computed from EVENTS)."""
    live: dict[int, tuple[int, str, int, int]] = {}
    for ts, address, size, where, t in EVENTS:
        if ts > at:
            break
        if size is None:
            live.pop(address, None)
        else:
            live[address] = (size, where, t, ts)
    out: dict[str, int] = {}
    for size, where, t, ts in live.values():
        if (tid is None or t == tid) and ts > born_after:
            out[where] = out.get(where, 0) + size
    return out


def _by_frame(model: dict, view: str) -> dict[str, int]:
    """Self bytes per innermost function name of one view."""
    out: dict[str, int] = {}
    v = model["views"][view]
    for node, nbytes in zip(v["node"], v["bytes"], strict=True):
        name = model["frames"][model["frame"][node]][0]
        out[name] = out.get(name, 0) + nbytes
    return out


def _names(d: dict[str, int]) -> dict[str, int]:
    return {{"cache": HOSTILE}.get(k, k): v for k, v in d.items()}


@pytest.fixture(scope="module")
def con():
    b, _ = _log()
    c = connect_tables_analyzed(b.tables())
    yield c
    c.close()


def test_peak_root_equals_stats_peak(con):
    model = build_flame(con)
    peak = process_stats(con)["peak_memory"]
    assert peak == max(sum(_alive(ts).values()) for ts, *_ in EVENTS)
    assert model["views"]["peak"]["total"] == peak
    assert abs(sum(model["views"]["peak"]["bytes"]) - peak) <= peak * 0.001
    peak_ts = process_stats(con)["peak_ts_ns"]
    assert _by_frame(model, "peak") == _names(_alive(peak_ts))


def test_end_view_is_what_is_alive_at_the_end(con):
    model = build_flame(con, FlameOptions(leaks=True))
    assert list(model["views"]) == ["end"]
    assert _by_frame(model, "end") == _names(_alive(10**9))
    assert model["views"]["end"]["total"] == process_stats(con)["active_memory"]


def test_stacks_share_their_outer_frames(con):
    model = build_flame(con)
    frames = [model["frames"][f] if f >= 0 else None for f in model["frame"]]
    # main is one node, its children load and the hostile cache frame; parse under load
    assert [tuple(f) for f in frames if f].count(MAIN) == 1
    main = frames.index(list(MAIN))
    load, parse = frames.index(list(LOAD)), frames.index(list(PARSE))
    assert model["parent"][main] == 0 and model["parent"][load] == main
    assert model["parent"][parse] == load
    assert all(p < i for i, p in enumerate(model["parent"]) if i)


@pytest.mark.parametrize("at_ns", [125, 305, 450])
def test_at_a_time_reads_the_log(con, at_ns):
    first = build_flame(con)["first_ts_ns"]  # times are since the run's first event
    assert first == EVENTS[0][0]
    model = build_flame(con, FlameOptions(at=(at_ns - first) / 1e9))
    assert _by_frame(model, "at") == _names(_alive(at_ns))


def test_thread_filter(con):
    model = build_flame(con, FlameOptions(at="end", tid=2))
    assert _by_frame(model, "end") == _names(_alive(10**9, tid=2))
    peak = build_flame(con, FlameOptions(tid=1))
    assert _by_frame(peak, "peak") == _names(_alive(process_stats(con)["peak_ts_ns"], tid=1))
    assert _by_frame(peak, "end") == _names(_alive(10**9, tid=1))


def test_temporal_window_is_allocated_in_it_and_alive_at_its_end(con):
    opts = FlameOptions(temporal=True, slots=8)
    model = build_flame(con, opts)
    t = model["temporal"]
    first, slot = t["first_ts_ns"], t["slot_ns"]
    cells = t["cells"]
    for i in range(t["slots"]):
        for j in range(i, t["slots"]):
            got: dict[str, int] = {}
            for node, a, e, nbytes in zip(
                cells["node"], cells["a"], cells["e"], cells["bytes"], strict=True
            ):
                if i <= a <= j < e:
                    name = model["frames"][model["frame"][node]][0]
                    got[name] = got.get(name, 0) + nbytes
            end = first + (j + 1) * slot - 1
            expected = _alive(end, born_after=first + i * slot - 1)
            assert got == _names(expected), (i, j)
    assert t["curve"]["t"] and max(t["curve"]["max_bytes"]) == process_stats(con)["peak_memory"]


def test_too_many_sites_are_grouped_and_totals_kept(con):
    model = build_flame(con, FlameOptions(max_sites=1))
    names = [model["frames"][f][0] for f in model["frame"][1:]]
    assert "(2 smaller sites)" in names
    assert model["views"]["peak"]["total"] == process_stats(con)["peak_memory"]


def test_processes_are_children_of_the_root_and_pid_selects_one():
    b = LogBuilder()
    for pid in (1, 2):
        b.process(pid, 0, argv=[f"app{pid}.py"], exit_ts_ns=900)
    s1, s2 = b.stack(1, [MAIN, LOAD]), b.stack(2, [MAIN, PARSE])
    b.alloc(1, 10, 0x10, 700, stack_id=s1)
    b.alloc(2, 20, 0x10, 500, stack_id=s2)
    b.free(1, 30, 0x10)
    b.alloc(2, 40, 0x20, 400, stack_id=s2)  # process 2 peaks alone, later (900 B)
    c = connect_tables_analyzed(b.tables())
    both = build_flame(c)
    assert both["views"]["peak"]["total"] == process_stats(c)["peak_memory"] == 1200
    tops = [both["frames"][both["frame"][i]][:2] for i, p in enumerate(both["parent"]) if p == 0]
    assert tops == [["process 1", "app1.py"], ["process 2", "app2.py"]]
    one = build_flame(c, FlameOptions(pid=2, temporal=True))
    assert one["views"]["peak"]["total"] == process_stats(c, 2)["peak_memory"] == 900
    assert _by_frame(one, "peak") == {"parse": 900}
    assert sum(one["temporal"]["cells"]["bytes"]) == 900  # alive at the end, pid 2 only
    c.close()


def test_the_node_cap_groups_the_lightest_sites(con):
    from memscope.analyzers.flame import build_tree

    sites = {(1, sid): w for sid, w in zip(_log()[1].values(), (5, 9, 1), strict=True)}
    full, _ = build_tree(con, sites, weight=sites)
    capped, node_of = build_tree(con, sites, weight=sites, max_nodes=len(full.parent) - 1)
    assert len(capped.parent) <= len(full.parent)
    grouped = {
        k
        for k, n in node_of.items()
        if capped.frames[capped.frame[n]][0].endswith("smaller sites)")
    }
    assert grouped and min(sites[k] for k in set(sites) - grouped) >= max(sites[k] for k in grouped)


@pytest.mark.parametrize(
    "opts, message",
    [
        (FlameOptions(pid=7), "no memory events of pid 7"),
        (FlameOptions(tid=99), "no allocations of thread 99"),
        (FlameOptions(at=5.0), "the run lasted"),
        (FlameOptions(at="middle"), "expected peak, end or seconds"),
    ],
)
def test_bad_requests_say_what_is_wrong(con, opts, message):
    with pytest.raises(FlameError, match=message):
        build_flame(con, opts)


def test_page_embeds_names_as_escaped_json(con):
    model = build_flame(con, FlameOptions(temporal=True))
    html = flame_page(model)
    assert HOSTILE not in html and "<img" not in html
    assert html.count("</script>") == 3  # the page's own three script elements
    start = html.index('id="memscope-flame">') + len('id="memscope-flame">')
    blob = html[start : html.index("</script>", start)]
    assert json.loads(blob) == json.loads(json.dumps(model))


def test_svg_draws_the_peak_and_escapes_names(tmp_path):
    write_sample_reports(tmp_path, n_vars=6, names=HOSTILE_NAMES)
    reports = load_reports(tmp_path)
    exporter = FlameGraphSvg()
    buf = io.BytesIO()
    exporter.render(exporter.build(reports), buf)
    svg = buf.getvalue()
    assert b"<img" not in svg and b"<script" not in svg
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    tips = ["".join(t.itertext()) for t in root.iter(f"{ns}title")]
    assert any(HOSTILE_NAMES[0] in t for t in tips) and any(HOSTILE_NAMES[1] in t for t in tips)
    peak = reports["memory_analysis"]["memory_stats"]["peak_memory"]
    widths = [float(r.get("width")) for r in list(root.iter(f"{ns}rect"))[1:]]  # 0: background
    assert widths[0] == pytest.approx(1200 - 20 - 0.5)  # the root: all of the peak
    assert 1 < len(widths) and min(widths[1:]) < widths[0] >= max(widths[1:])
    flame = reports["memory_analysis"]["flame_graph"]
    assert sum(flame["views"]["peak"]["bytes"]) == peak
    assert all(not a.startswith("on") for e in root.iter() for a in e.attrib)


def test_svg_of_a_report_without_flame_data_says_so(tmp_path):
    write_sample_reports(tmp_path, n_vars=3)
    path = tmp_path / "snapshot_memory_analysis.json"
    data = json.loads(path.read_text())
    data["flame_graph"] = {
        "format": 1,
        "parent": [-1, 5],
        "frame": [-1, 0],
        "frames": [],
        "views": {},
    }
    path.write_text(json.dumps(data))
    exporter = FlameGraphSvg()
    buf = io.BytesIO()
    exporter.render(exporter.build(load_reports(tmp_path)), buf)
    assert b"No flame graph data" in buf.getvalue()


PROGRAM = textwrap.dedent("""
    import time
    def big():
        return [bytearray(50_000) for _ in range(40)]
    def small():
        return [str(i) * 8 for i in range(5000)]
    keep = big()
    tmp = small()
    time.sleep(0.02)
    del tmp
    keep2 = small()
""")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "memscope", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verb_on_a_traced_run_matches_stats(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    run = tmp_path / "run"
    out = run_cli("run", "--out", run, "--no-report", prog)
    assert out.returncode == 0, out.stderr
    out = run_cli("flamegraph", run, "--temporal", "-o", tmp_path / "f.html")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "f.html")
    html = (tmp_path / "f.html").read_text("utf-8")
    start = html.index('id="memscope-flame">') + len('id="memscope-flame">')
    model = json.loads(html[start : html.index("</script>", start)])
    stats = json.loads(run_cli("stats", run, "--json").stdout)["total"]
    root = model["views"]["peak"]["total"]
    assert abs(root - stats["peak_memory"]) <= 0.001 * stats["peak_memory"]
    assert model["views"]["end"]["total"] == stats["active_memory"]
    assert model["temporal"]["cells"]["node"]
    functions = {f[0] for f in model["frames"]}
    assert {"big", "small"} <= functions or {"big.<locals>.<listcomp>"} <= functions
    for args, message in [
        (("--at", "later"), "expected peak, end or seconds"),
        (("--pid", "1"), "no memory events of pid 1"),
        (("--leaks", "--at", "1"), "not both"),
    ]:
        bad = run_cli("flamegraph", run, *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    missing = run_cli("flamegraph", tmp_path / "nowhere")
    assert missing.returncode == 2 and "not a run directory" in missing.stderr
