"""``processes.argv``: the program as typed (``-m`` module name, ``-c`` code kept)."""

import pytest

from memscope.producer.program_argv import launched_as, program_argv


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (["py", "-m", "pkg.mod", "a"], ("-m", "pkg.mod")),
        (["py", "-W", "ignore", "-X", "dev", "-m", "pkg"], ("-m", "pkg")),
        (["py", "-Im", "pkg"], ("-m", "pkg")),
        (["py", "-mpkg", "x"], ("-m", "pkg")),
        (["py", "-Werror", "-c", "print(1)"], ("-c", "print(1)")),
        (["py", "-Bc", "pass"], ("-c", "pass")),
        (["py", "script.py", "-m", "x"], None),
        (["py", "-u", "script.py", "-c", "x"], None),
        (["py", "-"], None),
        (["py", "-m"], None),
    ],
)
def test_launched_as_reads_the_interpreter_options(orig, expected):
    assert launched_as(orig) == expected


def test_program_argv_puts_the_module_and_the_code_back():
    assert program_argv(["-m", "a"], ["py", "-m", "pkg", "a"]) == ["-m", "pkg", "a"]
    assert program_argv(["/x/pkg/__main__.py", "a"], ["py", "-m", "pkg", "a"]) == ["-m", "pkg", "a"]
    assert program_argv(["-c", "a"], ["py", "-c", "pass", "a"]) == ["-c", "pass", "a"]
    assert program_argv(["s.py", "a"], ["py", "s.py", "a"]) == ["s.py", "a"]
