"""durability.render: the CLI's text and JSON, pure and below the command line."""

from __future__ import annotations

from durability import render


def test_table_aligns_columns_and_prints_none_as_dash() -> None:
    assert render.table(("op", "level"), [("a", "soft_safe"), ("bb", None)]).splitlines() == [
        "op  level",
        "--  ---------",
        "a   soft_safe",
        "bb  -",
    ]


def test_a_clean_log_has_no_torn_tail() -> None:
    assert render.tail_json(None) is None
    assert render.tail_line(None) == "no torn tail"
    assert render.repair_lines({"wal.log": None, "evidence.log": None}) == []
