"""Prometheus metrics of a followed log: ``memscope analyze LOG --follow --metrics-port N``.

The follower (:mod:`memscope.analyzers.follow`) calls :meth:`FollowerMetrics.publish` after
each round that folded something. ``publish`` runs on the follower's thread: it reads the
figures from the analysis state over the follower's connection into a :class:`Snapshot` of
plain tuples and swaps it in whole (one reference assignment). The HTTP server's threads only
read the latest snapshot, so a scrape never touches the fold or the DuckDB connection and
nothing is done per event. Served with ``prometheus-client`` (text format, and OpenMetrics
when the scraper asks for it).

Metrics (``pid`` and ``program`` labels: the process id and its ``argv[0]`` base name):

``memscope_active_bytes``, ``memscope_active_blocks``, ``memscope_peak_bytes`` (gauges)
    live bytes and blocks now, and the highest live bytes so far, per process: the figures
    ``memscope stats`` prints (:func:`memscope.analyzers.memstats.process_stats`).
``memscope_allocations_total``, ``memscope_allocated_bytes_total``, ``memscope_frees_total``
    blocks allocated and their bytes, blocks freed, per process (counters).
``memscope_site_live_bytes{pid, location}``
    live bytes per allocation site, the ``top_sites`` sites of each process holding the most
    (``location`` is the innermost frame, ``function (file:line)``, from the stack resolver;
    sites with the same innermost frame are summed).
``memscope_events_folded_total``, ``memscope_follow_rounds_total``
    memory events folded, analysis rounds that found the log changed.
``memscope_follow_lag_seconds``
    seconds since the newest log change the follower has folded (absent before the first).
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from memscope.analyzers.follow import Follower


def network_facing(host: str) -> bool:
    """Whether binding ``host`` serves beyond this machine (anything but loopback)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: whatever it resolves to, assume it is reachable


#: The ``location`` of a site whose stack the log does not resolve.
UNKNOWN_LOCATION = "unknown"


@dataclass(frozen=True)
class ProcessFigures:
    """One process's figures, as ``memscope stats`` computes them."""

    pid: int
    program: str
    active_bytes: int
    active_blocks: int
    peak_bytes: int
    allocations: int
    allocated_bytes: int
    frees: int


@dataclass(frozen=True)
class Snapshot:
    """What a scrape reports: immutable, published whole after each round."""

    processes: tuple[ProcessFigures, ...] = ()
    #: ``(pid, location, live bytes)``, the top sites of each process, largest first.
    sites: tuple[tuple[int, str, int], ...] = ()
    events: int = 0
    rounds: int = 0
    #: Wall-clock time (``time.time()``) of the newest log change folded; None before any.
    log_changed_at: float | None = None


def _program(argv: Any) -> str:
    if not argv:
        return ""
    return os.path.basename(str(argv[0]))


def process_figures(con: duckdb.DuckDBPyConnection) -> tuple[ProcessFigures, ...]:
    """Every process of the log on ``con`` (with its analysis state), by pid.

    The figures of :func:`memscope.analyzers.memstats.process_stats`, as ``memscope stats``
    prints them.
    """
    from memscope.analyzers.memstats import each_process_stats

    programs = {
        int(pid): _program(argv)
        for pid, argv in con.execute("SELECT pid, argv FROM processes ORDER BY pid").fetchall()
    }
    pids = [
        int(r[0])
        for r in con.execute(
            "SELECT pid FROM processes UNION SELECT pid FROM state_processes ORDER BY pid"
        ).fetchall()
    ]
    out = []
    for pid, stats in each_process_stats(con, pids).items():
        out.append(
            ProcessFigures(
                pid=pid,
                program=programs.get(pid, ""),
                active_bytes=int(stats["active_memory"]),
                active_blocks=int(stats["active_allocations"]),
                peak_bytes=int(stats["peak_memory"]),
                allocations=int(stats["total_allocations"]),
                allocated_bytes=int(stats["total_allocated"]),
                frees=int(stats["total_deallocations"]),
            )
        )
    return tuple(out)


def top_sites(con: duckdb.DuckDBPyConnection, per_process: int) -> tuple[tuple[int, str, int], ...]:
    """``(pid, location, live bytes)`` of the ``per_process`` locations holding the most.

    Sites (stack, domain) are summed by location (their innermost frame): two stacks that
    end in the same line are one series, so the labels stay unique. Costs one row per live
    stack, never per event.
    """
    from memscope.analyzers.stacks import resolver

    live = con.execute(
        "SELECT pid, stack_id, sum(live_bytes)::BIGINT FROM state_sites WHERE live_bytes > 0 "
        "GROUP BY pid, stack_id ORDER BY pid, stack_id"
    ).fetchall()
    if not live:
        return ()
    stacks = resolver(con)
    by_location: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pid, stack_id, nbytes in live:
        location = stacks.location(int(pid), int(stack_id)) or UNKNOWN_LOCATION
        by_location[int(pid)][location] += int(nbytes)
    out: list[tuple[int, str, int]] = []
    for pid in sorted(by_location):
        ranked = sorted(by_location[pid].items(), key=lambda item: (-item[1], item[0]))
        out.extend((pid, location, nbytes) for location, nbytes in ranked[:per_process])
    return tuple(out)


def take_snapshot(
    con: duckdb.DuckDBPyConnection,
    *,
    events: int,
    rounds: int,
    log_changed_at: float | None,
    per_process: int,
) -> Snapshot:
    """The figures of the state on ``con`` now (the caller owns ``con``: same thread)."""
    return Snapshot(
        processes=process_figures(con),
        sites=top_sites(con, per_process),
        events=events,
        rounds=rounds,
        log_changed_at=log_changed_at,
    )


class SnapshotCollector:
    """A ``prometheus_client`` collector over the latest published :class:`Snapshot`."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def publish(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` what scrapes report (one reference swap: atomic for readers)."""
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """The metric families of the current snapshot (called by the server's threads)."""
        snap = self.snapshot  # read once: one consistent snapshot per scrape
        labels = ["pid", "program"]
        gauges = (
            ("memscope_active_bytes", "Bytes in live blocks now", "active_bytes"),
            ("memscope_active_blocks", "Live blocks now", "active_blocks"),
            ("memscope_peak_bytes", "Highest live bytes so far", "peak_bytes"),
        )
        for name, doc, field in gauges:
            gauge = GaugeMetricFamily(
                name, doc, labels=labels, unit="" if "blocks" in name else "bytes"
            )
            for p in snap.processes:
                gauge.add_metric([str(p.pid), p.program], getattr(p, field))
            yield gauge
        counters = (
            ("memscope_allocations", "Blocks allocated", "allocations", ""),
            ("memscope_allocated_bytes", "Bytes allocated", "allocated_bytes", "bytes"),
            ("memscope_frees", "Blocks freed", "frees", ""),
        )
        for name, doc, field, unit in counters:
            counter = CounterMetricFamily(name, doc, labels=labels, unit=unit)
            for p in snap.processes:
                counter.add_metric([str(p.pid), p.program], getattr(p, field))
            yield counter
        sites = GaugeMetricFamily(
            "memscope_site_live_bytes",
            "Live bytes of the sites holding the most, by innermost frame",
            labels=["pid", "location"],
            unit="bytes",
        )
        for pid, location, nbytes in snap.sites:
            sites.add_metric([str(pid), location], nbytes)
        yield sites
        yield CounterMetricFamily(
            "memscope_events_folded", "Memory events folded", value=snap.events
        )
        yield CounterMetricFamily(
            "memscope_follow_rounds",
            "Analysis rounds that found the log changed",
            value=snap.rounds,
        )
        if snap.log_changed_at is not None:
            yield GaugeMetricFamily(
                "memscope_follow_lag_seconds",
                "Seconds since the newest log change folded",
                value=max(0.0, time.time() - snap.log_changed_at),
                unit="seconds",
            )


class FollowerMetrics:
    """The ``/metrics`` endpoint of a follower: a collector and the HTTP server serving it.

    Args:
        host: address to bind (loopback by default: the metrics name programs and source
            files).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        top_sites: sites exported per process.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, top_sites: int = 20) -> None:
        self.top_sites = top_sites
        self.collector = SnapshotCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        """Where the metrics are served."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def publish(self, follower: Follower) -> None:
        """Snapshot ``follower``'s state (on its thread, after a round) for the next scrapes."""
        self.collector.publish(
            take_snapshot(
                follower.con,
                events=follower.events,
                rounds=follower.rounds,
                log_changed_at=follower.log_changed_at,
                per_process=self.top_sites,
            )
        )

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
