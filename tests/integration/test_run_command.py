"""``memscope run``: the traced program's I/O, exit code and signals pass through unchanged."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from api_support import PROGRAMS, clean_env, memscope_run, python, table

pytestmark = pytest.mark.timeout(120)


def test_missing_script_is_a_clear_error(tmp_path):
    done = memscope_run(["--out", tmp_path, tmp_path / "nope.py"])
    assert done.returncode == 2
    assert "nope.py: no such file" in done.stderr


def test_no_program_is_a_clear_error():
    done = memscope_run([])
    assert done.returncode == 2
    assert "name a script" in done.stderr


def test_output_stdin_and_exit_code_are_the_programs(tmp_path):
    args = [PROGRAMS / "echo_exit.py", "3", "--out", "x y"]
    plain = python(args, input="hello\n")
    traced = memscope_run(["--out", tmp_path / "run", "--no-report", *args], input="hello\n")
    assert plain.returncode == 3
    assert traced.returncode == 3
    assert traced.stdout == plain.stdout
    assert "to stderr" in traced.stderr
    log = tmp_path / "run" / "events"
    starts = [r for r in table(log, "processes") if r["event"] == "start"]
    assert len(starts) == 1
    assert starts[0]["argv"][1:] == ["3", "--out", "x y"]
    # memscope run completes the program's process with its exit status.
    exits = [r for r in table(log, "processes") if r["event"] == "exit"]
    assert [r["exit_code"] for r in exits if r["pid"] == starts[0]["pid"]][-1] == 3


def test_run_module(tmp_path):
    plain = python(["-m", "json.tool"], input='{"b": [1, 2]}')
    traced = memscope_run(
        ["--out", tmp_path / "run", "--no-report", "-m", "json.tool"], input='{"b": [1, 2]}'
    )
    assert traced.returncode == plain.returncode == 0
    assert traced.stdout == plain.stdout
    assert {r["event"] for r in table(tmp_path / "run" / "events", "processes")} == {
        "start",
        "exit",
    }


def test_run_code_keeps_the_code_and_the_module_name_in_argv_and_stats(tmp_path):
    code = "import sys; print(42, sys.argv[1:])"
    traced = memscope_run(["--out", tmp_path / "c", "--no-report", "-c", code, "a", "-x"])
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == python(["-c", code, "a", "-x"]).stdout == "42 ['a', '-x']\n"
    starts = [r for r in table(tmp_path / "c" / "events", "processes") if r["event"] == "start"]
    assert [r["argv"] for r in starts] == [["-c", code, "a", "-x"]]

    traced = memscope_run(["--out", tmp_path / "m", "--no-report", "-m", "json.tool", "-h"])
    assert traced.returncode == 0, traced.stderr
    starts = [r for r in table(tmp_path / "m" / "events", "processes") if r["event"] == "start"]
    assert [r["argv"] for r in starts] == [["-m", "json.tool", "-h"]]
    shown = subprocess.run(
        [sys.executable, "-m", "memscope", "stats", tmp_path / "m"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert "-m json.tool -h" in shown.stdout


def test_run_code_and_module_together_is_a_clear_error(tmp_path):
    import argparse

    from memscope.commands.run import RunOptions
    from memscope.errors import CliError

    # From the command line the first of -m / -c wins (the rest is the program's words);
    # options given both ways at once are refused.
    args = argparse.Namespace(
        program=[],
        module="json.tool",
        code="pass",
        out=str(tmp_path),
        broker=None,
        mode=None,
        native=False,
        no_report=True,
    )
    with pytest.raises(CliError, match="give -m MODULE or -c CODE, not both"):
        RunOptions.from_args(args)
    assert RunOptions.from_args(argparse.Namespace(**{**vars(args), "module": None})).argv == (
        "-c",
        "pass",
    )


@pytest.mark.parametrize(
    ("words", "own", "program"),
    [
        (["-m", "pytest", "-q", "-x"], ["-m", "pytest"], ["-q", "-x"]),
        (["--out", "D", "-m", "mod", "-x"], ["--out", "D", "-m", "mod"], ["-x"]),
        (["-mmod", "--out", "x"], ["-mmod"], ["--out", "x"]),
        (["-m", "mod", "--", "-x"], ["-m", "mod"], ["-x"]),  # the older documented form
        (["-mmod", "--", "--", "-x"], ["-mmod"], ["--", "-x"]),
        (["-m", "mod", "-x", "--", "a"], ["-m", "mod"], ["-x", "--", "a"]),
        (["s.py", "--size", "3", "-v"], [], ["s.py", "--size", "3", "-v"]),
        (
            ["--mode=full", "--ou", "D", "--native", "s.py", "-m", "x"],
            ["--mode=full", "--ou", "D", "--native"],
            ["s.py", "-m", "x"],
        ),
        (["--out", "D", "--", "s.py", "--", "-v"], ["--out", "D"], ["s.py", "--", "-v"]),
        (["--bogus", "s.py"], ["--bogus"], ["s.py"]),
        (["-c", "print(1)", "-x", "s.py"], ["-c", "print(1)"], ["-x", "s.py"]),
        (["--out", "D", "-cpass", "--out"], ["--out", "D", "-cpass"], ["--out"]),
    ],
)
def test_split_argv_gives_everything_after_the_program_to_it(words, own, program):
    from memscope.commands.run import split_argv

    assert split_argv(words) == (own, program)


def test_module_and_script_options_pass_through_unchanged(tmp_path):
    # Words after -m MODULE or the script path are the program's, even ones that look like
    # memscope run's own options; nothing needs a `--`.
    module = memscope_run(
        [
            "--out",
            tmp_path / "m",
            "--no-report",
            "-m",
            "echo_exit",
            "4",
            "-q",
            "-x",
            "--out",
            "y",
            "--",
            "-m",
            "z",
        ],
        input="in\n",
        cwd=PROGRAMS,
    )
    assert module.returncode == 4, module.stderr
    assert "argv: ['4', '-q', '-x', '--out', 'y', '--', '-m', 'z']" in module.stdout
    script = memscope_run(
        [
            "--no-report",
            "--out",
            tmp_path / "s",
            PROGRAMS / "echo_exit.py",
            "5",
            "--size",
            "3",
            "-v",
            "--no-report",
        ],
        input="in\n",
    )
    assert script.returncode == 5, script.stderr
    assert "argv: ['5', '--size', '3', '-v', '--no-report']" in script.stdout
    assert (tmp_path / "m" / "events").is_dir() and (tmp_path / "s" / "events").is_dir()


def test_an_unknown_option_before_the_program_is_memscopes_error(tmp_path):
    done = memscope_run(["--bogus", PROGRAMS / "echo_exit.py", "0"])
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr


def test_a_program_killed_by_a_signal_exits_128_plus_n(tmp_path):
    done = memscope_run(
        ["--out", tmp_path / "run", "--no-report", PROGRAMS / "wait_signal.py", "self-kill"]
    )
    assert done.returncode == 128 + signal.SIGKILL
    # the killed process never sent its exit row: its records were harvested (crash capture)
    assert "ended without shipping everything; recovered" in done.stderr
    assert "no final batch" not in done.stderr
    exits = [r for r in table(tmp_path / "run" / "events", "processes") if r["event"] == "exit"]
    exits.sort(key=lambda r: r["ts_ns"])
    # the harvest's exit row (no status: the harvester is not its parent), then memscope run's
    assert [r["exit_code"] for r in exits] == [None, -signal.SIGKILL]


def _start_and_wait_ready(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--out",
            str(tmp_path / "run"),
            "--no-report",
            str(PROGRAMS / "wait_signal.py"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize(("signo", "expected"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_are_forwarded_to_the_program(tmp_path, signo, expected):
    process = _start_and_wait_ready(tmp_path)
    try:
        time.sleep(0.2)
        os.kill(process.pid, signo)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == expected, err
    if signo == signal.SIGINT:
        assert "KeyboardInterrupt" in err  # the program got it, exactly as without memscope


def test_disabled_run_traces_nothing_and_changes_nothing(tmp_path):
    env = clean_env(MEMSCOPE_DISABLE="1")
    done = memscope_run(
        ["--out", tmp_path / "run", PROGRAMS / "echo_exit.py", "0"],
        input="x\n",
        env=env,
    )
    assert done.returncode == 0
    assert "stdin: x" in done.stdout
    assert table(tmp_path / "run" / "events", "processes") == []
    assert "no traced process sent anything" in done.stderr


def test_the_sites_own_sitecustomize_still_runs_and_sys_path_is_untouched(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.stderr.write('site customized\\n')\n")
    program = tmp_path / "show_path.py"
    program.write_text("import json, sys\nprint(json.dumps(sys.path))\n")
    env = clean_env(PYTHONPATH=str(site))
    plain = python([program], env=env)
    traced = memscope_run(["--out", tmp_path / "run", "--no-report", program], env=env)
    assert traced.returncode == 0, traced.stderr
    assert "site customized" in traced.stderr
    assert traced.stdout == plain.stdout  # the bootstrap left no trace on sys.path
    rows = table(tmp_path / "run" / "events", "processes")
    assert sorted(r["event"] for r in rows) == ["exit", "exit", "start"]  # its own, run's


def test_run_against_a_standalone_broker_in_sampled_mode(tmp_path):
    address = f"ipc://{tmp_path}/b"
    log = tmp_path / "broker-log"
    with standalone_broker(address, log):
        done = memscope_run(
            [
                "--broker",
                address,
                "--mode",
                "sampled",
                "--out",
                tmp_path / "run",
                "--no-report",
                PROGRAMS / "echo_exit.py",
                "5",
            ],
            input="x\n",
        )
        assert done.returncode == 5, done.stderr
        rows = table(log, "processes")
        assert {r["event"] for r in rows} == {"start", "exit"}
        assert {r["mode"] for r in rows} == {"sampled"}


@contextlib.contextmanager
def standalone_broker(address, log):
    broker = subprocess.Popen(
        [sys.executable, "-m", "memscope", "broker", "--bind", address, "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:
        assert broker.stdout is not None
        deadline = time.monotonic() + 60
        while "serving" not in broker.stdout.readline():
            assert time.monotonic() < deadline and broker.poll() is None
        yield broker
    finally:
        broker.terminate()
        broker.wait(30)


def test_run_honours_memscope_broker_address_unless_an_enclosing_run_set_it(tmp_path):
    address = f"ipc://{tmp_path}/b"
    log = tmp_path / "broker-log"
    program = [PROGRAMS / "echo_exit.py", "6"]
    with (
        standalone_broker(address, log),
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import memscope, sys, time\nmemscope.init()\nprint('up', "
                "flush=True)\nsys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(MEMSCOPE_BROKER_ADDRESS=address),
        ) as other,
    ):
        # Another program traced into the same broker, running all along: memscope run waits
        # for its own program's processes only.
        assert other.stdout is not None and other.stdout.readline() == "up\n"
        done = memscope_run(
            ["--out", tmp_path / "run", "--no-report", *program],
            input="x\n",
            env=clean_env(MEMSCOPE_BROKER_ADDRESS=address),
        )
        assert done.returncode == 6, done.stderr
        assert f"sending to the broker at {address} (MEMSCOPE_BROKER_ADDRESS)" in done.stderr
        assert f"log: {log}" in done.stderr
        assert not (tmp_path / "run").exists()  # no embedded broker, no run directory
        assert "waiting up to" not in done.stderr and "no final batch" not in done.stderr
        rows = table(log, "processes")
        assert [r["exit_code"] for r in rows if r["event"] == "exit"][-1] == 6
        # Inside a program that a memscope run traces, the address is that run's own: a
        # nested memscope run starts its own broker, as with an empty MEMSCOPE_BROKER_ADDRESS.
        for n, env in enumerate(
            [
                clean_env(MEMSCOPE_BROKER_ADDRESS=address, _MEMSCOPE_RUN_BROKER_ADDRESS=address),
                clean_env(MEMSCOPE_BROKER_ADDRESS=""),
            ]
        ):
            own = memscope_run(
                ["--out", tmp_path / f"own{n}", "--no-report", *program], input="x\n", env=env
            )
            assert own.returncode == 6, own.stderr
            assert "sending to the broker" not in own.stderr
            assert (tmp_path / f"own{n}" / "events" / "manifest.json").exists()
        assert len(table(log, "processes")) == len(rows)  # nothing more reached that broker
        other.stdin.close()
        assert other.wait(60) == 0


def test_run_names_an_unusable_configured_broker(tmp_path):
    config = tmp_path / "memscope.toml"
    config.write_text('broker_address = "tcp://127.0.0.1:1"\n')
    done = memscope_run(
        ["--out", tmp_path / "run", PROGRAMS / "echo_exit.py", "0"],
        input="x\n",
        env=clean_env(MEMSCOPE_CONFIG=str(config)),
    )
    assert done.returncode == 1
    assert f"the broker at tcp://127.0.0.1:1 (broker_address in {config})" in done.stderr
    assert "argv:" not in done.stdout  # the program did not run


def test_an_existing_run_directory_is_not_overwritten(tmp_path):
    first = memscope_run(
        ["--out", tmp_path / "run", "--no-report", PROGRAMS / "echo_exit.py", "0"], input="a\n"
    )
    assert first.returncode == 0, first.stderr
    again = memscope_run(["--out", tmp_path / "run", PROGRAMS / "echo_exit.py", "0"], input="a\n")
    assert again.returncode == 2
    assert "already holds a run's log" in again.stderr
    assert again.stdout == ""  # the program did not run


def test_a_python_without_memscope_in_a_subprocess_stays_quiet(tmp_path):
    base = os.path.join(sys.base_prefix, "bin", "python3")
    if python(["-c", "import sys; print(sys.prefix != sys.base_prefix)"]).stdout.strip() != "True":
        pytest.skip("needs memscope installed in a virtual environment")
    program = tmp_path / "calls_base.py"
    program.write_text(
        "import subprocess, sys\n"
        f"done = subprocess.run([{base!r}, '-c', 'print(42)'], capture_output=True, text=True)\n"
        "print(done.stdout.strip(), repr(done.stderr))\n"
    )
    traced = memscope_run(["--out", tmp_path / "run", "--no-report", program])
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.strip() == "42 ''"


def test_the_bootstrap_is_valid_python():
    from memscope.producer.bootstrap import SITECUSTOMIZE, make_bootstrap_dir

    compile(SITECUSTOMIZE, "sitecustomize.py", "exec")
    directory = make_bootstrap_dir(str(os.environ.get("TMPDIR", "/tmp")))
    try:
        assert (directory / "sitecustomize.py").read_text() == SITECUSTOMIZE
    finally:
        (directory / "sitecustomize.py").unlink()
        directory.rmdir()
