"""Run one analyzer over a LogBuilder and check its report against the file's schema."""

import jsonschema

from memscope.analyzers import ANALYZERS
from memscope.analyzers._common import AnalyzerOptions, load_schema
from memscope.analyzers.views import connect_tables, materialize


def analyze(builder, kind, **options):
    con = connect_tables(builder.tables())
    materialize(con)
    report = ANALYZERS[kind](con, AnalyzerOptions(**options))
    jsonschema.validate(report, load_schema(ANALYZERS[kind].file_kind))
    return report
