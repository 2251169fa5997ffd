"""`memscope compact --dataset`: several logs in one Hive dataset, read by Spark and DuckDB.

Each engine runs the documented SQL (``analyzers/dataset.py``) over the merged dataset and
must find, per process, the peak and the top sites that memscope's own reports give for
each log.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from memscope.analyzers.dataset import PEAK_SQL, TOP_SITES_SQL
from memscope.analyzers.log_builder import LogBuilder
from memscope.analyzers.runner import run_all
from memscope.commands.main import main
from memscope.eventlog.log import LogWriter

#: 23:59:58 UTC: every process's events run past midnight, over two date partitions.
WALL_START = int(dt.datetime(2026, 12, 6, 23, 59, 58, tzinfo=dt.UTC).timestamp()) * 10**9
FILES = [
    ("alloc", "app/io.py", 10),
    ("parse", "app/parse.py", 20),
    ("build", "app/model.py", 30),
    ("cache", "app/cache.py", 40),
    ("encode", "app/out.py", 50),
    ("decode", "app/in.py", 60),
]


def random_process(b: LogBuilder, pid: int, host: str, seed: int, n: int = 3000) -> None:
    """Allocs, frees and reallocs of one process over 4 s, from 6 sites."""
    rng = np.random.default_rng(seed)
    b.process(pid, 1_000, host=host, argv=(f"{host}-{pid}.py",))
    stacks = [b.stack(pid, [("main", "app/main.py", 1), frame]) for frame in FILES]
    weights = rng.dirichlet(np.ones(len(stacks)))
    live: list[int] = []
    next_address = 0x1000
    for i in range(n):
        ts = 2_000 + i * (4_000_000_000 // n)
        op = rng.random()
        stack = int(rng.choice(stacks, p=weights))
        if live and op < 0.35:
            b.free(pid, ts, live.pop(int(rng.integers(len(live)))), stack_id=stack)
        elif live and op < 0.45:
            old = live.pop(int(rng.integers(len(live))))
            next_address += 0x10000
            b.realloc(pid, ts, old, next_address, int(rng.integers(16, 50_000)), stack_id=stack)
            live.append(next_address)
        else:
            next_address += 0x10000
            b.alloc(pid, ts, next_address, int(rng.integers(16, 50_000)), stack_id=stack)
            live.append(next_address)


def write_log(path: Path, processes: list[tuple[int, str, int]]) -> Path:
    b = LogBuilder()
    for pid, host, seed in processes:
        random_process(b, pid, host, seed)
    tables = b.tables()
    procs = tables["processes"]
    # the producer id carries the wall clock at the start row (host:pid:wall_ns)
    producers = [
        f"{h}:{p}:{WALL_START - 1_000 + ts}"
        for h, p, ts in zip(
            procs.column("host").to_pylist(),
            procs.column("pid").to_pylist(),
            procs.column("ts_ns").to_pylist(),
            strict=True,
        )
    ]
    tables["processes"] = procs.set_column(
        procs.schema.get_field_index("producer"), "producer", pa.array(producers)
    )
    writer = LogWriter(path / "events")
    for name, table in tables.items():
        if table.num_rows:
            writer.append(name, table)
    writer.close()
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three brokers' logs (two share a pid on different hosts), their reports, one dataset."""
    base = tmp_path_factory.mktemp("fleet")
    logs = {
        "web-1": write_log(base / "web-1", [(100, "web-1", 1), (101, "web-1", 2)]),
        "web-2": write_log(base / "web-2", [(100, "web-2", 3)]),
        "batch-1": write_log(base / "batch-1", [(200, "batch-1", 4)]),
    }
    expected_peaks: dict[tuple[str, int], int] = {}
    expected_sites: dict[tuple[str, int], list[tuple]] = {}
    for host, run in logs.items():
        run_all(run, run / "reports", only=["memory", "performance"])
        memory = json.loads((run / "reports" / "snapshot_memory_analysis.json").read_text())
        for proc in memory["processes"]:
            expected_peaks[(host, proc["pid"])] = proc["memory_stats"]["peak_memory"]
        perf = json.loads((run / "reports" / "snapshot_performance.json").read_text())
        for site in perf["hottest_sites"]["by_bytes"]:
            expected_sites.setdefault((host, site["pid"]), []).append(
                (site["stack_id"], site["allocations"], site["bytes_allocated"], site["location"])
            )
    root = base / "dataset"
    for run in logs.values():
        assert main(["compact", str(run), "--dataset", str(root)]) == 0
    return root, logs, expected_peaks, expected_sites


def check(peaks: list[dict], sites: list[dict], expected_peaks, expected_sites) -> None:
    found_peaks = {(r["host"], int(r["pid"])): int(r["peak_bytes"]) for r in peaks}
    assert found_peaks == expected_peaks
    found_sites: dict[tuple[str, int], list[dict]] = {}
    for r in sites:
        found_sites.setdefault((r["host"], int(r["pid"])), []).append(r)
    assert set(found_sites) == set(expected_sites)
    for key, want in expected_sites.items():
        got = found_sites[key]
        assert [
            (int(r["stack_id"]), int(r["allocations"]), int(r["bytes_allocated"])) for r in got
        ] == [w[:3] for w in want]
        for r, w in zip(got, want, strict=True):
            assert r["function"] in w[3] and r["filename"] in w[3], (r, w)


def test_the_dataset_is_hive_partitioned_and_merges_logs(fleet):
    root, logs, expected_peaks, _ = fleet
    hosts = {p.name for p in (root / "memory").iterdir()}
    assert hosts == {"host=web-1", "host=web-2", "host=batch-1"}
    dates = {p.name for p in (root / "memory" / "host=web-2").iterdir()}
    assert dates == {"date=2026-12-06", "date=2026-12-07"}
    assert (root / "memory" / "host=web-2" / "date=2026-12-07" / "pid=100").is_dir()
    assert len(list((root / "_logs").glob("*.json"))) == 3
    # compacting a log again replaces its own files only
    before = sorted(p.relative_to(root) for p in root.rglob("*.parquet"))
    assert main(["compact", str(logs["web-2"]), "--dataset", str(root)]) == 0
    assert sorted(p.relative_to(root) for p in root.rglob("*.parquet")) == before


def test_duckdb_reads_the_same_peaks_and_top_sites(fleet):
    root, _, expected_peaks, expected_sites = fleet
    con = duckdb.connect()
    for table in ("memory", "stacks", "frames"):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
            f"'{root}/{table}/**/*.parquet', hive_partitioning = true)"
        )
    assert con.execute("SELECT count(DISTINCT date) FROM memory").fetchone()[0] == 2

    def dicts(sql):
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    check(dicts(PEAK_SQL), dicts(TOP_SITES_SQL), expected_peaks, expected_sites)


def _java() -> str | None:
    return shutil.which("java")


@pytest.mark.skipif(
    _java() is None,
    reason="no Java runtime: Spark needs one (Debian: "
    "apt-get install default-jre-headless, as .ci/run does)",
)
def test_spark_reads_the_same_peaks_and_top_sites(fleet):
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is in the dev extra")
    root, _, expected_peaks, expected_sites = fleet
    # One small local session: the JIT's first tier, no whole-stage code generation (its
    # compile time dwarfs this data), one partition; the result does not depend on these.
    spark = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("memscope-fleet")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        for table in ("memory", "stacks", "frames"):
            spark.read.option("basePath", str(root / table)).parquet(
                str(root / table)
            ).createOrReplaceTempView(table)
        peaks = [r.asDict() for r in spark.sql(PEAK_SQL).collect()]
        sites = [r.asDict() for r in spark.sql(TOP_SITES_SQL).collect()]
    finally:
        spark.stop()
    check(peaks, sites, expected_peaks, expected_sites)


def test_the_dataset_holds_every_event_of_every_log(fleet):
    root, logs, _, _ = fleet
    import pyarrow.dataset as ds

    memory = ds.dataset(root / "memory", format="parquet", partitioning="hive").to_table()
    total = 0
    for run in logs.values():
        log_id = json.loads((run / "events" / "manifest.json").read_text())["log_id"]
        rows = memory.filter(pc.equal(memory["log_id"], log_id)).num_rows
        info = json.loads((root / "_logs" / f"{log_id}.json").read_text())
        assert rows == info["tables"]["memory"] > 0
        total += rows
    assert memory.num_rows == total


def test_a_traced_run_gives_its_reports_figures_from_the_dataset(tmp_path):
    """A real run (rec1 chunks decoded into the dataset), read back with DuckDB."""
    import subprocess
    import sys

    script = tmp_path / "work.py"
    script.write_text(
        "keep = [bytearray(1000 + i) for i in range(2000)]\n"
        "tmp = [str(i) * 50 for i in range(5000)]\ndel tmp\n"
    )
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "memscope", "run", "--out", str(run), str(script)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert main(["compact", str(run), "--dataset", str(tmp_path / "ds")]) == 0
    con = duckdb.connect()
    for table in ("memory", "stacks", "frames"):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
            f"'{tmp_path / 'ds' / table}/**/*.parquet', hive_partitioning = true)"
        )
    memory = json.loads(next(run.glob("*_memory_analysis.json")).read_text())
    perf = json.loads(next(run.glob("*_performance.json")).read_text())
    peaks = {int(pid): int(peak) for _, _, pid, peak in con.execute(PEAK_SQL).fetchall()}
    assert peaks == {p["pid"]: p["memory_stats"]["peak_memory"] for p in memory["processes"]}
    sites = con.execute(TOP_SITES_SQL).fetchall()
    want = [
        (s["pid"], s["stack_id"], s["allocations"], s["bytes_allocated"])
        for s in perf["hottest_sites"]["by_bytes"]
    ]
    got = [(int(r[2]), int(r[4]), int(r[5]), int(r[6])) for r in sites]
    assert got == want[: len(got)] and len(got) >= 5


def test_an_unwritable_dataset_root_is_one_line_and_status_2(fleet, tmp_path, capsys):
    _, logs, _, _ = fleet
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["compact", str(logs["web-1"]), "--dataset", str(blocker / "root")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "Not a directory" in err
