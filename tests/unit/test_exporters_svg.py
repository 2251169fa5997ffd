"""The two SVG reports: valid XML, the measured numbers visible, traced names escaped."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from memscope.exporters import charts, load_reports
from memscope.exporters.charts import metric_text
from memscope.exporters.flame_svg import FlameGraphSvg
from memscope.exporters.formatting import human_bytes, human_count, human_duration_ns
from memscope.exporters.memory_svg import MemoryAnalysisSvg
from memscope.exporters.sample_reports import HOSTILE_NAMES, write_sample_reports
from memscope.exporters.timeline_svg import MAX_ROWS_PER_SCOPE, LifecycleTimelineSvg

SVG = "{http://www.w3.org/2000/svg}"


def render(exporter, reports) -> bytes:
    buf = io.BytesIO()
    exporter.render(exporter.build(reports), buf)
    return buf.getvalue()


def texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


REAL_SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


@pytest.fixture(scope="module", params=["analyzers-sample", "synthetic"])
def sample(request, tmp_path_factory) -> Path:
    if request.param == "analyzers-sample":
        return REAL_SAMPLE
    d = tmp_path_factory.mktemp("sample")
    write_sample_reports(d, n_vars=40)
    return d


def load(directory: Path, kind: str) -> dict:
    return json.loads(next(directory.glob(f"*_{kind}.json")).read_text())


def test_memory_svg_shows_the_measured_numbers(sample):
    memory_svg = render(MemoryAnalysisSvg(), load_reports(sample))
    mem = load(sample, "memory_analysis")
    stats = mem["memory_stats"]
    shown = texts(memory_svg)
    joined = "\n".join(shown)
    assert human_bytes(stats["active_memory"]) in shown
    assert human_bytes(stats["peak_memory"]) in shown
    assert human_count(stats["active_allocations"]) in shown
    assert f"{stats['memory_efficiency']:.1f}%" in shown
    assert human_bytes(stats["median_allocation_size"]) in shown
    assert human_bytes(stats["p95_allocation_size"]) in shown
    assert f"{stats['fragmentation']:.1f}%" in shown
    assert metric_text("ratio", stats["allocation_density"]) in shown
    assert human_count(stats["total_allocations"]) in shown
    # the largest type of the treemap, its size, and a variable of it are labelled
    types = [
        t
        for c in mem["memory_hierarchy"].values()
        for s in c["subcategories"].values()
        for t in s["types"]
    ]
    biggest = max(types, key=lambda t: t["size_bytes"])
    assert biggest["type_name"] in shown
    assert human_bytes(biggest["size_bytes"]) in shown
    assert biggest["variable_names"][0] in shown
    # the top allocation site is named with its byte count
    site = max(mem["top_allocation_sites"], key=lambda s: s["bytes_allocated"])
    assert site["location"].split(" (")[0] in joined
    assert human_bytes(site["bytes_allocated"]) in joined
    # size distribution counts (from the performance report) are labelled
    perf = load(sample, "performance")
    bucket = max(perf["allocation_distribution"], key=lambda b: b["count"])
    assert human_count(bucket["count"]) in shown
    assert bucket["bucket"] in joined


def test_memory_svg_without_the_memory_file_says_so(tmp_path):
    write_sample_reports(tmp_path, n_vars=3)
    next(tmp_path.glob("*_memory_analysis.json")).unlink()
    shown = "\n".join(texts(render(MemoryAnalysisSvg(), load_reports(tmp_path))))
    assert "no *_memory_analysis.json" in shown
    assert "not measured" in shown


def test_memory_svg_with_a_corrupt_file_says_where(tmp_path):
    write_sample_reports(tmp_path, n_vars=3)
    next(tmp_path.glob("*_memory_analysis.json")).write_text('{"memory_stats": {')
    shown = "\n".join(texts(render(MemoryAnalysisSvg(), load_reports(tmp_path))))
    assert "not valid JSON" in shown


def assert_inert(svg: bytes) -> None:
    root = ET.fromstring(svg)
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert not tags & {"script", "img", "foreignObject", "iframe"}, tags
    for el in root.iter():
        assert not [a for a in el.attrib if a.lower().startswith("on")], el.attrib


@pytest.mark.parametrize(
    "exporter",
    [MemoryAnalysisSvg(), LifecycleTimelineSvg(), FlameGraphSvg()],
    ids=["memory", "timeline", "flame"],
)
def test_hostile_names_are_text(tmp_path, exporter):
    write_sample_reports(tmp_path, n_vars=12, names=HOSTILE_NAMES)
    svg = render(exporter, load_reports(tmp_path))
    assert_inert(svg)
    shown = "\n".join(texts(svg))
    if isinstance(exporter, FlameGraphSvg):  # names are cut to fit; whole in each <title>
        shown += "\n".join("".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}title"))
    # the raw markup survives only as text (argv in the memory SVG's title, names in both)
    assert "<img src=x onerror=alert(1)>" in shown
    assert "</script><script>alert(1)</script>" in shown
    assert b"<img" not in svg and b"<script" not in svg
    if isinstance(exporter, LifecycleTimelineSvg):  # every variable's name is drawn
        for name in HOSTILE_NAMES[:4]:
            assert name in shown


def test_timeline_one_variable(tmp_path):
    write_sample_reports(tmp_path, n_vars=1)
    reports = load_reports(tmp_path)
    svg = render(LifecycleTimelineSvg(), reports)
    shown = texts(svg)
    var = load(tmp_path, "lifetime")["lifecycle_events"][0]
    assert var["name"] in shown
    assert human_bytes(var["size"]) in shown
    assert any("1 tracked variable(s) in 1 scope(s)" in t for t in shown)
    assert not any("more variable" in t for t in shown)


def test_timeline_500_variables_is_grouped_and_says_so(tmp_path):
    write_sample_reports(tmp_path, n_vars=500)
    svg = render(LifecycleTimelineSvg(), load_reports(tmp_path))
    root = ET.fromstring(svg)
    height = float(root.get("height"))
    assert height < 4000, height  # bounded, not 500 rows
    shown = texts(svg)
    assert any("500 tracked variable(s)" in t for t in shown)
    elided = [t for t in shown if t.startswith("+ ") and "more variable(s)" in t]
    assert elided and all(f"only the {MAX_ROWS_PER_SCOPE} largest" in t for t in elided)
    rows = root.findall(f".//{SVG}g[@class='variable']")
    assert 0 < len(rows) <= 10 * MAX_ROWS_PER_SCOPE
    # the largest variable overall is among the drawn rows
    largest = max(load(tmp_path, "lifetime")["lifecycle_events"], key=lambda v: v["size"])
    assert largest["name"] in shown


def test_timeline_draws_alias_and_containment_links(tmp_path):
    write_sample_reports(tmp_path, n_vars=30)
    svg = render(LifecycleTimelineSvg(), load_reports(tmp_path))
    root = ET.fromstring(svg)
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    life = load(tmp_path, "lifetime")
    alias = life["aliases"][0]["names"]
    assert f"{alias[0]} alias {alias[1]}" in titles
    link = life["containment"][0]
    assert f"{link['container_name']} contains {link['contained_name']}" in titles


def test_timeline_of_the_analyzers_sample():
    svg = render(LifecycleTimelineSvg(), load_reports(REAL_SAMPLE))
    life = load(REAL_SAMPLE, "lifetime")
    shown = texts(svg)
    assert any(f"{len(life['lifecycle_events'])} tracked variable(s)" in t for t in shown)
    for var in sorted(life["lifecycle_events"], key=lambda v: -v.get("size", 0))[:5]:
        assert var["name"] in shown
    # each scope instance's run is drawn under its title
    titles = ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}title")]
    t0 = min(p["start_ts_ns"] for p in load(REAL_SAMPLE, "memory_analysis")["processes"])
    entered = [s for s in life["scope_analysis"]["scopes"] if "enter_ts_ns" in s]
    assert entered
    for scope in entered:
        start = human_duration_ns(scope["enter_ts_ns"] - t0)
        end = human_duration_ns(scope["exit_ts_ns"] - t0)
        assert f"scope {scope['name']} ran {start} – {end}" in titles


def test_timeline_without_lifetime_data(tmp_path):
    svg = render(LifecycleTimelineSvg(), load_reports(tmp_path))
    shown = "\n".join(texts(svg))
    assert "not measured" in shown and "no *_lifetime.json" in shown


def test_sites_of_one_line_are_merged_in_the_chart(tmp_path):
    paths = write_sample_reports(tmp_path, n_vars=3)
    mem = json.loads(paths["memory_analysis"].read_text())
    site = dict(mem["top_allocation_sites"][0], stack_id=999, bytes_allocated=1000, allocations=10)
    mem["top_allocation_sites"][0].update(bytes_allocated=5000, allocations=5)
    mem["top_allocation_sites"].append(site)
    paths["memory_analysis"].write_text(json.dumps(mem))
    shown = texts(render(MemoryAnalysisSvg(), load_reports(tmp_path)))
    assert f"{human_bytes(6000)} · 15 allocs" in shown


def test_peak_marker_is_the_measured_peak_not_the_highest_bucket_end(tmp_path):
    mem = load(REAL_SAMPLE, "memory_analysis")
    for name in REAL_SAMPLE.glob("*.json"):
        (tmp_path / name.name).write_text(name.read_text())
    proc = mem["processes"][0]
    peak, peak_ts = proc["memory_stats"]["peak_memory"], proc["memory_stats"]["peak_ts_ns"]
    series = next(s for s in mem["memory_over_time"] if s["pid"] == proc["pid"])
    for p in series["points"]:  # bucket ends see at most a third of the peak
        p["live_bytes"] = min(p["live_bytes"], peak // 3)
    highest_sample = max(p["live_bytes"] for p in series["points"])
    (tmp_path / "snapshot_memory_analysis.json").write_text(json.dumps(mem))
    reports = load_reports(tmp_path)
    view = MemoryAnalysisSvg().build(reports)
    chart = charts.memory_timeline(view.series, 1000, peaks=view.peaks).to_dict(validate=False)
    marks = [v for layer in chart["layer"][1:] for v in layer["data"]["values"]]
    mark = next(m for m in marks if m["pid"] == str(proc["pid"]))
    t0 = min(p["start_ts_ns"] for p in mem["processes"])
    assert mark["bytes"] == peak
    assert mark["t_s"] == pytest.approx((peak_ts - t0) / 1e9)
    # the line passes through the peak too, so marker and line agree
    line = chart["layer"][0]["data"]["values"]
    assert max(r["bytes"] for r in line if r["pid"] == str(proc["pid"])) == peak
    shown = texts(render(MemoryAnalysisSvg(), reports))
    assert f"peak {human_bytes(peak)} (process {proc['pid']})" in shown
    assert not any(human_bytes(highest_sample) in t and "peak" in t for t in shown)


def test_single_process_peak_label_equals_the_card(tmp_path):
    paths = write_sample_reports(tmp_path, n_vars=3)
    mem = json.loads(paths["memory_analysis"].read_text())
    mem["processes"], mem["memory_over_time"] = mem["processes"][:1], mem["memory_over_time"][:1]
    mem["memory_stats"] = mem["processes"][0]["memory_stats"]
    paths["memory_analysis"].write_text(json.dumps(mem))
    shown = texts(render(MemoryAnalysisSvg(), load_reports(tmp_path)))
    peak = human_bytes(mem["memory_stats"]["peak_memory"])
    assert peak in shown and f"peak {peak}" in shown


def test_top_sites_with_one_innermost_frame_get_one_band_each(tmp_path):
    paths = write_sample_reports(tmp_path, n_vars=3)
    mem = json.loads(paths["memory_analysis"].read_text())
    base = mem["top_allocation_sites"][0]
    # same function, different files whose names differ only in the middle
    places = [f"pkg/{'x' * 30}/{d}/{'y' * 20}/mod.py:7" for d in ("aa", "bb", "cc")]
    mem["top_allocation_sites"] = [
        dict(
            base,
            stack_id=50 + i,
            bytes_allocated=9000 - 1000 * i,
            allocations=3,
            location=f"append ({where})",
            trace=[f"append ({where})"],
        )
        for i, where in enumerate(places)
    ]
    paths["memory_analysis"].write_text(json.dumps(mem))
    view = MemoryAnalysisSvg().build(load_reports(tmp_path))
    spec = charts.top_sites(view.sites).to_dict(validate=False)
    bars = spec["layer"][0]
    assert bars["encoding"]["y"]["field"] == "rank"
    values = spec["data"]["values"] if "data" in spec else bars["data"]["values"]
    assert sorted(v["rank"] for v in values) == [0, 1, 2]
    labels = [v["site"] for v in values]
    assert len(set(labels)) == 3
    shown = texts(render(MemoryAnalysisSvg(), load_reports(tmp_path)))
    for label in labels:
        assert label in shown
    # each bar has its own band: the groups holding the three bars sit at different heights
    svg = render(MemoryAnalysisSvg(), load_reports(tmp_path)).decode()
    ys = []
    for i in range(3):
        bar = svg.index(f"rank: {i}; site:")
        clip = svg.rfind("<g clip-path=", 0, bar)  # Vega wraps each rounded bar in a group
        start = svg.rfind('<g transform="translate(', 0, clip)
        ys.append(svg[start : svg.index(")", start)])
    assert len(set(ys)) == 3, ys


def _late_start_sample(tmp_path: Path) -> Path:
    """The analyzers' sample, its processes started 10 s before anything was tracked."""
    for path in REAL_SAMPLE.glob("*.json"):
        data = json.loads(path.read_text())
        for proc in data.get("processes", []) if isinstance(data, dict) else []:
            proc["start_ts_ns"] -= 10_000_000_000
        (tmp_path / path.name).write_text(json.dumps(data))
    return tmp_path


def test_timeline_axis_starts_at_the_first_tracked_event(tmp_path):
    svg = render(LifecycleTimelineSvg(), load_reports(_late_start_sample(tmp_path)))
    root = ET.fromstring(svg)
    shown = texts(svg)
    assert any("time since the first tracked variable or scope event" in t for t in shown)
    life = load(REAL_SAMPLE, "lifetime")
    first_enter = min(
        s["enter_ts_ns"] for s in life["scope_analysis"]["scopes"] if "enter_ts_ns" in s
    )
    first_var = min(v["created_ts_ns"] for v in life["lifecycle_events"])
    first = min(first_enter, first_var)
    # the bars spread over the plot: the earliest starts at its left edge, none in the last
    # few pixels only
    from memscope.exporters.timeline_svg import GUTTER, LABEL_W, RIGHT, WIDTH

    x0, x1 = LABEL_W + GUTTER, WIDTH - RIGHT
    bars = [
        float(r.get("x"))
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "variable"
        for r in g.findall(f"{SVG}rect")[2:3]
    ]
    assert bars and min(bars) >= x0 - 0.01
    assert min(bars) < x0 + (x1 - x0) * 0.2
    name_first = next(
        v["name"] for v in life["lifecycle_events"] if v["created_ts_ns"] == first_var
    )
    assert name_first in shown
    assert first <= first_var


def test_timeline_scope_header_uses_the_measured_enter_and_exit(tmp_path):
    svg = render(LifecycleTimelineSvg(), load_reports(REAL_SAMPLE))
    shown = "\n".join(texts(svg))
    life = load(REAL_SAMPLE, "lifetime")
    t0 = min(p["start_ts_ns"] for p in load(REAL_SAMPLE, "memory_analysis")["processes"])
    scope = next(s for s in life["scope_analysis"]["scopes"] if s["name"] == "load_users")
    vars_ = [v for v in life["lifecycle_events"] if v["scope"] == "load_users"]
    # the scope was entered before its first variable and exited before the last died
    assert scope["enter_ts_ns"] < min(v["created_ts_ns"] for v in vars_)
    ran = (
        f"ran {human_duration_ns(scope['enter_ts_ns'] - t0)} – "
        f"{human_duration_ns(scope['exit_ts_ns'] - t0)}"
    )
    assert ran in shown


def test_timeline_long_type_names_cut_at_the_end_with_the_full_name_kept(tmp_path):
    for path in REAL_SAMPLE.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    life = load(REAL_SAMPLE, "lifetime")
    long_type = "dict[str, list[tuple[int, float]]]"
    life["lifecycle_events"][0]["type_name"] = long_type
    (tmp_path / "snapshot_lifetime.json").write_text(json.dumps(life))
    root = ET.fromstring(render(LifecycleTimelineSvg(), load_reports(tmp_path)))
    cut = [
        t
        for t in root.iter(f"{SVG}text")
        if (t.text or "").endswith("…") and long_type.startswith((t.text or "")[:-1])
    ]
    assert cut, "type name not cut at the end"
    assert any(
        "".join(title.itertext()) == long_type for t in cut for title in t.findall(f"{SVG}title")
    )


def test_summary_counts_processes_and_names_their_pids():
    shown = texts(render(MemoryAnalysisSvg(), load_reports(REAL_SAMPLE)))
    pids = [p["pid"] for p in load(REAL_SAMPLE, "memory_analysis")["processes"]]
    assert f"{len(pids)} (pids {', '.join(map(str, pids))})" in shown
    # one process: "1 (pid N)", never a bare pid that reads like a count
    from memscope.exporters.memory_svg import _summary_lines

    view = MemoryAnalysisSvg().build(load_reports(REAL_SAMPLE))
    view.processes = view.processes[:1]
    assert ("Processes", f"1 (pid {pids[0]})") in _summary_lines(view)


def test_allocation_density_card_explains_itself():
    svg = render(MemoryAnalysisSvg(), load_reports(REAL_SAMPLE))
    stats = load(REAL_SAMPLE, "memory_analysis")["memory_stats"]
    joined = "\n".join(texts(svg))
    assert stats["tracked_variables"] > 0
    assert "allocations pertracked variable" in joined  # two lines of one note


def test_long_series_are_capped_with_their_peaks_and_dips_kept():
    rows = [{"pid": "1", "t_s": i / 1000, "bytes": 1000 + (i % 7)} for i in range(20_000)]
    rows[12_345]["bytes"] = 9_999_999  # one spike between bucket ends
    rows[777]["bytes"] = 3  # and one dip
    rows += [{"pid": "2", "t_s": i / 10, "bytes": i} for i in range(50)]
    capped = charts.cap_series(rows)
    one = [r for r in capped if r["pid"] == "1"]
    assert len(one) <= charts.MAX_SERIES_POINTS
    assert max(r["bytes"] for r in one) == 9_999_999
    assert min(r["bytes"] for r in one) == 3
    assert one[0]["t_s"] == 0 and one[-1]["t_s"] == rows[19_999]["t_s"]
    assert [r["t_s"] for r in one] == sorted(r["t_s"] for r in one)
    assert len([r for r in capped if r["pid"] == "2"]) == 50  # short series untouched
    chart = charts.memory_timeline(rows, 800).to_dict(validate=False)
    sent = [len(layer["data"]["values"]) for layer in chart["layer"] if "data" in layer]
    sent += [len(v) for v in chart.get("datasets", {}).values()]
    assert 100 < sum(sent) <= charts.MAX_SERIES_POINTS + 60, sent


def test_peak_card_of_several_processes_says_it_is_their_sum():
    shown = texts(render(MemoryAnalysisSvg(), load_reports(REAL_SAMPLE)))
    n = len(load(REAL_SAMPLE, "memory_analysis")["processes"])
    assert n > 1 and f"all {n} processes together" in shown
