"""Record kinds and allocator domains: one C definition (protocol/rec1.h), equal to Python's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memscope.producer import _tracer
from memscope.protocol import _rec1, wire

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("ALLOC", "CALLOC", "REALLOC", "FREE")
DOMAINS = ("RAW", "MEM", "OBJ", "NUMPY", "NATIVE", "MMAP")
#: A kind or domain given a number in C (``TR_FREE = 3``, ``MS_DOMAIN_MMAP = 5``).
NAMES = "|".join(KINDS + DOMAINS)
LITERAL_CODE = re.compile(rf"\b[A-Z]+_(DOMAIN_)?({NAMES})\s*=\s*\d")


@pytest.mark.parametrize("module", [_tracer, _rec1], ids=["_tracer", "_rec1"])
def test_the_c_modules_export_the_codes_python_uses(module):
    for kind in KINDS:
        assert getattr(module, f"KIND_{kind}") == getattr(wire, f"KIND_{kind}"), kind
    for domain in DOMAINS:
        assert getattr(module, f"DOMAIN_{domain}") == getattr(wire, f"DOMAIN_{domain}"), domain
    assert module.DOMAIN_MAX == max(wire.DOMAIN_NAMES)
    assert set(wire.KIND_NAMES) == {getattr(wire, f"KIND_{k}") for k in KINDS}
    assert set(wire.DOMAIN_NAMES) == {getattr(wire, f"DOMAIN_{d}") for d in DOMAINS}


def test_rec1_header_size_agrees():
    from memscope.protocol.records import REC1_HEADER

    assert _tracer.REC1_HEADER == _rec1.REC1_HEADER == REC1_HEADER


def test_no_other_c_file_defines_the_codes():
    """The shim and the tracer take the codes from rec1.h; no C file spells them out again."""
    offenders = []
    sources = [
        *ROOT.glob("producer/core/**/*.[ch]"),
        *ROOT.glob("protocol/*.[ch]"),
        *ROOT.glob("analyzers/*.[ch]"),
    ]
    assert len(sources) > 20
    for path in sources:
        if path.name == "rec1.h":
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if LITERAL_CODE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_a_literal_code():
    assert LITERAL_CODE.search("enum { MS_ALLOC = 0, MS_CALLOC = 1 };")
    assert LITERAL_CODE.search("enum { MS_DOMAIN_NATIVE = 4 };")
    assert LITERAL_CODE.search("enum { FD_ALLOC = 0, FD_CALLOC = 1 };")
    assert not LITERAL_CODE.search("enum { MS_ALLOC = TR_ALLOC };")
    assert not LITERAL_CODE.search("enum { TR_SLOT_FREE = 0 };")
