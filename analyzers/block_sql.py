"""The SQL of the raw-event block matching: the packed event code and the block selects.

Shared by the views over raw events (:mod:`memscope.analyzers.views`, one window per query)
and the chunked matcher behind them (:mod:`memscope.analyzers.blocks`).
"""

from __future__ import annotations

import duckdb

# Block events carry one packed code: bit 7 = starts a block, bits 3-6 = domain, bits 0-2 = kind.
# Keeping the window's payload this narrow is what makes matching 50 M events affordable.
START = 128


def allocations_select(chain: str) -> str:
    """Blocks (one per start) with the event that ended each, from a block chain relation."""
    return f"""
        SELECT pid, tid, seq, ts_ns, (code & 7)::UTINYINT AS kind,
            ((code >> 3) & 15)::UTINYINT AS domain, address, size, stack_id,
            CASE WHEN nc < {START} THEN nts END AS free_ts_ns,
            CASE WHEN nc < {START} THEN (nc & 7)::UTINYINT END AS free_kind,
            CASE WHEN nc < {START} THEN ((nc >> 3) & 15)::UTINYINT END AS free_domain,
            CASE WHEN nc >= {START} THEN nts END AS reused_ts_ns,
            nts AS end_ts_ns, nseq AS end_seq
        FROM {chain} WHERE code >= {START}"""


def ends_select(chain: str, notable_only: bool = False) -> str:
    """Block ends with what preceded each at its address, from a block chain relation.

    ``matched``: the previous event at the address started a block (this end ended it).
    ``repeated_end``: the previous event was an end of a block started just before it (a
    double free). ``notable_only`` keeps the unmatched ends and the domain mismatches.
    """
    notable = (
        f" AND (pc IS NULL OR pc < {START} OR ((pc >> 3) & 15) <> ((code >> 3) & 15))"
        if notable_only
        else ""
    )
    return f"""
        SELECT pid, tid, seq, ts_ns, (code & 7)::UTINYINT AS kind,
            ((code >> 3) & 15)::UTINYINT AS domain, address, stack_id,
            coalesce(pc >= {START}, false) AS matched,
            CASE WHEN pc >= {START} THEN pts END AS alloc_ts_ns,
            CASE WHEN pc >= {START} THEN ((pc >> 3) & 15)::UTINYINT END AS alloc_domain,
            coalesce(pc < {START} AND pc2 >= {START}, false) AS repeated_end,
            CASE WHEN pc < {START} THEN pts END AS previous_end_ts_ns,
            CASE WHEN pc < {START} AND pc2 >= {START} THEN pts2 END AS first_alloc_ts_ns
        FROM {chain} WHERE code < {START}{notable}"""


def use_chain(con: duckdb.DuckDBPyConnection, chain: str, ends: str) -> None:
    """Point ``_allocations`` at a block chain relation and ``_notable_ends`` at ends."""
    con.execute(f"CREATE OR REPLACE VIEW _allocations AS {allocations_select(chain)}")
    con.execute(f"CREATE OR REPLACE VIEW _notable_ends AS {ends_select(ends)}")
