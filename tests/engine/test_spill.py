"""The pieces of bounded-memory batches: spilled lists (spill.py) and line sources (ir/items.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pflow_tui.engine.ir.items import ItemsError, LineSource
from pflow_tui.engine.run.spill import (
    STRIDE,
    MappedList,
    Spill,
    SpilledList,
    is_ref,
    open_ref,
    results_dir,
)
from pflow_tui.engine.trace.writer import dumps

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


def spilled(tmp_path: Path, values: list[Any], count: int | None = None) -> SpilledList:
    w = Spill(tmp_path / "r", tmp_path).writer("f.node")
    for v in values:
        w.append(v)
    return w.close(len(values) if count is None else count)


# --- SpilledList -----------------------------------------------------------------------------------

def test_a_spilled_list_reads_like_the_list_it_holds(tmp_path: Path) -> None:
    values = [{"i": i, "sq": i * i} for i in range(3 * STRIDE + 17)]
    seq = spilled(tmp_path, values)
    assert len(seq) == len(values) and bool(seq)
    assert seq[0] == values[0] and seq[-1] == values[-1] and seq[STRIDE] == values[STRIDE]
    # random access in any order, across the stride blocks
    for i in [5, 700, 3, 3 * STRIDE + 16, STRIDE - 1, STRIDE, 0, 401, 400, 402]:
        assert seq[i] == values[i]
    assert seq[10:20] == values[10:20] and seq[::-97] == values[::-97]
    assert list(seq) == values and list(reversed(seq)) == values[::-1]
    assert seq == values and values == seq and seq != values[:-1]
    assert {"i": 7, "sq": 49} in seq and {"i": -1} not in seq
    assert copy.deepcopy(seq) is seq
    with pytest.raises(IndexError):
        seq[len(values)]
    with pytest.raises(IndexError):
        seq[-len(values) - 1]
    assert seq.__trace_json__() == {"jsonl_file": "r/f.node.jsonl", "count": len(values)}
    assert "r/f.node.jsonl" in repr(seq)


def test_entries_after_the_last_line_are_null(tmp_path: Path) -> None:
    seq = spilled(tmp_path, [1, 2], count=5)
    assert len(seq) == 5 and list(seq) == [1, 2, None, None, None] and seq[4] is None


@settings(max_examples=60, deadline=None)
@given(st.lists(json_values, max_size=40), st.lists(st.integers(-45, 45), max_size=20))
def test_any_values_read_back_as_the_trace_holds_them(values: list[Any], reads: list[int]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        seq = spilled(Path(d), values)
        expected = [orjson.loads(dumps(v)) for v in values]
        assert list(seq) == expected
        for i in reads:
            if -len(values) <= i < len(values):
                assert seq[i] == expected[i]
        seq.close()


def test_odd_values_are_written_as_the_trace_writes_them(tmp_path: Path) -> None:
    seq = spilled(tmp_path, [{1: {2, 3}}, (1, 2), 2**70])
    assert list(seq) == [{"1": "{2, 3}"}, [1, 2], "1180591620717411303424"]


def test_a_list_in_a_trace_is_a_reference_that_opens_again(tmp_path: Path) -> None:
    seq = spilled(tmp_path, ["a", "b", "c"])
    ref = orjson.loads(dumps({"results": seq}))["results"]
    assert is_ref(ref) and ref == {"jsonl_file": "r/f.node.jsonl", "count": 3}
    again = open_ref(ref, tmp_path / "run.json")
    assert again == ["a", "b", "c"] and again[1] == "b" and again[-1] == "c"
    with pytest.raises(FileNotFoundError, match=r"copy the trace's \.results folder"):
        open_ref(ref, tmp_path / "elsewhere" / "run.json")


def test_a_mapped_list_applies_its_function_on_demand(tmp_path: Path) -> None:
    base = spilled(tmp_path, [{"x": i} for i in range(10)])
    calls: list[int] = []

    def x(v: dict[str, int]) -> int:
        calls.append(v["x"])
        return v["x"]

    m = MappedList(base, x)
    assert len(m) == 10 and calls == []
    assert m[3] == 3 and calls == [3]
    assert m.tolist() == list(range(10))
    assert json.loads(dumps([m])) == [list(range(10))]


def test_a_temporary_spill_folder_goes_away_with_its_last_list(tmp_path: Path) -> None:
    spill = Spill()
    w = spill.writer("flow.a.iteration_3.b#2")
    w.append({"k": 1})
    seq = w.close(1)
    folder = seq.path.parent
    assert seq.path.name == "flow.a.iteration_3.b#2.jsonl"
    assert seq.ref == str(seq.path)  # no trace folder: the reference is absolute
    del spill, w
    assert folder.is_dir() and seq[0] == {"k": 1}
    seq.close()
    del seq
    import gc

    gc.collect()
    assert not folder.exists()


def test_long_names_are_shortened_and_stay_unique(tmp_path: Path) -> None:
    spill = Spill(tmp_path / "r", tmp_path)
    a = spill.writer("f." + "x" * 300 + ".a")
    b = spill.writer("f." + "x" * 300 + ".b")
    assert a.path != b.path and len(a.path.name) < 200
    a.discard()
    b.discard()


def test_results_dir_is_beside_the_trace() -> None:
    assert results_dir(Path("/t/run.json")) == Path("/t/run.results")
    assert results_dir(Path("/t/run.trace")) == Path("/t/run.trace.results")


# --- LineSource -------------------------------------------------------------------------------------

def test_lines_of_a_text_skip_blank_lines_and_keep_the_rest(tmp_path: Path) -> None:
    src = LineSource("lines_of", "a\n\n  b \r\n \t\nc", tmp_path)
    assert len(src) == 3 and list(src) == ["a", "  b ", "c"]
    assert list(src) == ["a", "  b ", "c"]  # read again


def test_files_are_relative_to_the_flow_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "rows.jsonl").write_bytes(b'{"a": 1}\n\n[2]\r\n"x"\n   \n3')
    (tmp_path / "d" / "names.txt").write_bytes("é\r\nb\n".encode())
    rows = LineSource("jsonl_file", "d/rows.jsonl", tmp_path)
    assert len(rows) == 4 and list(rows) == [{"a": 1}, [2], "x", 3]
    assert list(LineSource("lines_file", "names.txt", tmp_path / "d")) == ["é", "b"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet="ab \t\r\n{}\"1", max_size=6), max_size=12))
def test_the_count_is_the_number_of_items_read(pieces: list[str]) -> None:
    import tempfile

    text = "".join(pieces)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.txt"
        path.write_text(text, newline="")
        for key, value in (("lines_of", text), ("lines_file", "t.txt")):
            src = LineSource(key, value, Path(d))
            assert len(src) == len(list(src))
        expected = [line.removesuffix("\r") for line in text.split("\n")
                    if line.strip(" \t\r\n\x0b\x0c")]
        assert list(LineSource("lines_of", text, Path(d))) == expected


def test_a_bad_json_line_is_named_by_its_line_number(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n\n{"a": }\n{"a": 3}\n')
    src = LineSource("jsonl_file", "rows.jsonl", tmp_path)
    assert len(src) == 3
    read = []
    with pytest.raises(ItemsError, match=r"rows.jsonl line 3 is not JSON \(.*column 7\): \{\"a\": \}"):
        for item in src:
            read.append(item)
    assert read == [{"a": 1}]
    with pytest.raises(ItemsError, match="line 2 of the text is not JSON"):
        list(LineSource("jsonl_of", "1\nnope", tmp_path))


def test_bad_sources_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ItemsError, match=r"file not found: nope.jsonl \(looked for .*nope.jsonl; "
                                         "paths are relative to the flow's folder\\)"):
        LineSource("jsonl_file", "nope.jsonl", tmp_path)
    with pytest.raises(ItemsError, match="is a folder"):
        LineSource("lines_file", ".", tmp_path)
    with pytest.raises(ItemsError, match=r"lines_of must be text, got array \(for a list"):
        LineSource("lines_of", [1, 2], tmp_path)
    with pytest.raises(ItemsError, match="jsonl_file must be a file path, got null"):
        LineSource("jsonl_file", None, tmp_path)
    (tmp_path / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(ItemsError, match=r"latin1\.txt line 2 is not UTF-8 text"):
        list(LineSource("lines_file", "latin1.txt", tmp_path))
