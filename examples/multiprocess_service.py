"""A multi-process service: a dispatcher with forked pool workers and a spawned indexer.

    memscope run examples/multiprocess_service.py      # every process traced into one log
    python examples/multiprocess_service.py [--size 10]

``memscope run`` traces the dispatcher, its ``fork`` pool workers and its ``spawn``-ed
indexer process into one log (each process with its parent's pid), so the reports cover the
whole service: ``memscope query RUN "select pid, ppid, argv from processes"``.

Run by itself, the dispatcher's ``memscope.init()`` traces it and its forked workers (a
forked child keeps tracing as a new process). A spawned child starts a fresh interpreter
that runs no ``init()`` of its own: it is traced only under ``memscope run``, or when
``MEMSCOPE_BROKER_ADDRESS`` names a standalone broker (see docs/deployment.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os

from _example import finish, parse_args, print_stats

import memscope


def handle_job(job: int) -> tuple[int, int, int]:
    """A pool worker's job: build a result buffer, track it, return a checksum."""
    payload = bytes((job + i) % 256 for i in range(20_000))
    memscope.track_var(payload)  # tracked in the worker process, with its pid
    return os.getpid(), job, sum(payload)


def indexer(texts: list[str], queue: mp.Queue) -> None:  # type: ignore[type-arg]
    """The spawned process: build an inverted index of the texts."""
    if os.environ.get("MEMSCOPE_BROKER_ADDRESS"):
        memscope.init()  # a no-op under memscope run; joins a standalone broker otherwise
        traced = True
    else:
        traced = False
    index: dict[str, list[int]] = {}
    for number, text in enumerate(texts):
        for word in text.split():
            index.setdefault(word, []).append(number)
    if traced:
        memscope.track_var(index)
    queue.put((os.getpid(), len(index), traced))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()
    print(f"dispatcher pid {os.getpid()}")

    jobs = list(range(8 * args.size))
    memscope.track_var(jobs)

    # Forked workers: they inherit the dispatcher's tracing and report as new processes.
    with memscope.scope("fork pool"):
        pool = mp.get_context("fork").Pool(processes=2)
        results = pool.map(handle_job, jobs)
        pool.close()
        pool.join()  # workers exit normally, shipping their final batch
    workers = sorted({pid for pid, _, _ in results})
    print(f"{len(results)} jobs done by fork workers {workers}")

    # A spawned process: a fresh interpreter.
    texts = [f"document {i} mentions topic {i % 7} and topic {i % 3}" for i in range(500)]
    with memscope.scope("spawned indexer"):
        context = mp.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=indexer, args=(texts, queue), name="indexer")
        child.start()
        pid, words, traced = queue.get(timeout=120)
        child.join()
    print(
        f"indexer pid {pid}: {words} distinct words "
        f"({'traced' if traced else 'not traced: run under memscope run'})"
    )

    print_stats("Dispatcher memory usage (this process only)")
    finish("multiprocess", args)


if __name__ == "__main__":
    main()
