"""Writes the corpus of crafted traces beside it: ``python tests/bad_traces/make_corpus.py``.

Each file is a small trace of a harmless flow (``echo`` nodes only: re-running one runs no
command and writes no file) with one thing wrong, named for what is wrong. ``cases.json``
says what a reader must make of each: ``refused`` (the header is bad, or the file is no
trace: exit 2 with a message) or how many malformed events it skips (``skipped``; None
when the number is not fixed by design, e.g. a line that holds two events).

The files are checked in; tests/engine/test_bad_traces.py and tests/app/test_replay_bad_traces.py
run them through every reader. Re-run this script after changing it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
FLOW = {"name": "corpus", "nodes": [
    {"id": "gen", "type": "echo", "params": {"message": "x", "data": [1, 2, 3]}},
    {"id": "sq", "type": "echo", "params": {"message": "item ${item}"},
     "batch": {"items": "${gen.data}", "parallel": True}}],
    "edges": [{"from": "gen", "to": "sq"}], "ir_version": "0.1.0"}
HEADER = {"format": "pflow-tui-trace", "version": 1, "created": "2026-12-05T20:54:20.673146+00:00",
          "flow_name": "corpus", "source": "flow.json", "flow": FLOW, "children": {}, "inputs": {},
          "pid": 4242, "python": "3.11.7", "base_dir": "/tmp"}
BATCH = {"count": 3, "parallel": True, "max_concurrent": 10, "error_handling": "fail_fast", "as": "item"}
OUT = {"echo": "x", "metadata": {"original_message": "x", "count": 1, "modified": False}, "data": [1, 2, 3]}


def base_events() -> list[Any]:
    e: list[dict[str, Any]] = [
        {"kind": "run.start", "path": "corpus", "flow": "corpus", "inputs": {}, "source": "flow.json"},
        {"kind": "node.start", "path": "corpus.gen", "node": "gen", "type": "echo",
         "params": {"message": "x", "data": [1, 2, 3]}},
        {"kind": "store.write", "path": "corpus.gen", "key": "gen", "value": OUT},
        {"kind": "node.end", "path": "corpus.gen", "node": "gen", "status": "ok", "duration": 0.001,
         "action": "default", "attempts": 1, "outputs": OUT},
        {"kind": "edge", "path": "corpus.gen", "from": "gen", "to": "sq", "action": "default"},
        {"kind": "node.start", "path": "corpus.sq", "node": "sq", "type": "echo",
         "params": {"message": "Hello"}, "batch": dict(BATCH)},
    ]
    for i in range(3):
        e.append({"kind": "item.start", "path": f"corpus.sq.iteration_{i}", "index": i, "label": str(i + 1),
                  "item": i + 1, "params": {"message": f"item {i + 1}"}})
        e.append({"kind": "item.end", "path": f"corpus.sq.iteration_{i}", "index": i, "status": "ok",
                  "duration": 0.0001, "attempts": 1, "outputs": {"echo": f"item {i + 1}"}})
    e.append({"kind": "store.write", "path": "corpus.sq", "key": "sq", "value": {"count": 3}})
    e.append({"kind": "node.end", "path": "corpus.sq", "node": "sq", "status": "ok", "duration": 0.002,
              "action": "default", "outputs": {"count": 3}})
    e.append({"kind": "run.end", "path": "corpus", "status": "ok", "duration": 0.01, "outputs": {}})
    out = []
    for n, event in enumerate(e, 1):
        out.append({"seq": n, "t": round(n * 0.01, 3), **event})
    return out


FOOTER = {"status": "ok", "finished": "2026-12-05T20:54:20.715202+00:00",
          "summary": {"duration": 0.01, "nodes": 2, "items": 3, "failed": 0, "cancelled": 0, "restored": 0},
          "outputs": {}, "store": {"gen": OUT, "sq": {"count": 3}}, "error": None}


def dump(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def layout(header: Any = None, events: list[Any] | None = None, footer: Any = None, *,
           cut: bool = False) -> bytes:
    """A trace as pflow-tui lays it out: header line, one event a line, footer line."""
    head = dump(HEADER if header is None else header)
    lines = [dump(e) for e in (base_events() if events is None else events)]
    text = head[:-1] + b',"events":[\n' + b",\n".join(lines)
    if cut:
        return text
    return text + b"\n]," + dump(FOOTER if footer is None else footer)[1:] + b"\n"


def with_event(at: int, value: Any) -> bytes:
    """The base trace with event number ``at`` (1-based) replaced by ``value``."""
    events = base_events()
    events[at - 1] = value
    return layout(events=events)


def changed(at: int, **fields: Any) -> bytes:
    """The base trace with fields of event ``at`` changed (a value of ... removes the field)."""
    events = base_events()
    for key, value in fields.items():
        if value is ...:
            events[at - 1].pop(key, None)
        else:
            events[at - 1][key] = value
    return layout(events=events)


def inserted(at: int, value: Any) -> bytes:
    events = base_events()
    events.insert(at - 1, value)
    return layout(events=events)


def deep(n: int) -> bytes:
    return b'{"seq":4,"t":0.04,"kind":"node.end","path":"corpus.gen","node":"gen","status":"ok",' \
           b'"outputs":{"x":' + b"[" * n + b"]" * n + b"}}"


def batch(**fields: Any) -> bytes:
    return changed(6, batch={**BATCH, **fields})


def header(**fields: Any) -> bytes:
    return layout(header={**HEADER, **fields})


def pretty(doc_events: list[Any]) -> bytes:
    doc = {**HEADER, "events": doc_events, **FOOTER}
    return json.dumps(doc, indent=2).encode()


def seals() -> bytes:
    events: list[Any] = []
    for e in base_events():
        events.append(e)
        if e["seq"] % 4 == 0:
            events.append({"kind": "seal", "n": e["seq"], "mac": "00" * 32})
    return layout(events=events)


CASES: dict[str, tuple[Callable[[], bytes], dict[str, Any]]] = {
    # events that are no object
    "event_is_a_number": (lambda: with_event(3, 42), {"skipped": 1}),
    "event_is_an_empty_object": (lambda: with_event(3, {}), {"skipped": 1}),
    "event_is_a_string": (lambda: with_event(3, "hello"), {"skipped": 1}),
    "event_is_null": (lambda: with_event(3, None), {"skipped": 1}),
    "event_is_a_list": (lambda: with_event(3, [1, 2]), {"skipped": 1}),
    "event_is_true": (lambda: with_event(5, True), {"skipped": 1}),
    "every_event_is_a_scalar": (lambda: layout(events=[1, "a", None, 2.5, True]), {"skipped": 5}),
    "event_is_binary_garbage": (lambda: with_event(3, b"\x00\xff\xfe garbage"), {"skipped": 1}),
    "event_is_not_json": (lambda: with_event(3, b'{"seq":3,"t":NaN,"kind":"edge"}'), {"skipped": 1}),
    "event_is_nested_100k_deep": (lambda: with_event(4, deep(100_000)), {"skipped": 1}),
    "event_is_nested_2k_deep": (lambda: with_event(4, deep(2_000)), {"skipped": 1}),
    "line_holds_two_events": (lambda: with_event(5, dump(base_events()[4]) + b"," + dump(base_events()[4])),
                              {"skipped": None}),
    # seq, t, kind, path
    "seq_is_10e30": (lambda: changed(3, seq=10**30), {"skipped": 1}),
    "seq_is_negative": (lambda: changed(3, seq=-1), {"skipped": 1}),
    "seq_is_a_string": (lambda: changed(3, seq="3"), {"skipped": 1}),
    "seq_is_a_float": (lambda: changed(3, seq=2.5), {"skipped": 1}),
    "seq_is_missing": (lambda: changed(3, seq=...), {"skipped": 1}),
    "seq_twice_the_same": (lambda: changed(8, seq=7), {"skipped": 0}),
    "t_is_a_string": (lambda: changed(7, t="0.07"), {"skipped": 1}),
    "t_is_negative": (lambda: changed(7, t=-5), {"skipped": 1}),
    "t_overflows_to_infinity": (lambda: with_event(5, b'{"seq":5,"t":1e400,"kind":"edge","path":"corpus.gen",'
                                                     b'"from":"gen","to":"sq","action":"default"}'),
                                {"skipped": 1}),
    "kind_is_unknown": (lambda: changed(5, kind="frobnicate"), {"skipped": 1}),
    "kind_is_a_number": (lambda: changed(5, kind=7), {"skipped": 1}),
    "kind_is_missing": (lambda: changed(5, kind=...), {"skipped": 1}),
    "kind_is_seal_lines_between_events": (seals, {"skipped": 0}),
    "path_is_missing": (lambda: changed(3, path=...), {"skipped": 1}),
    "path_is_a_number": (lambda: changed(3, path=5), {"skipped": 1}),
    "path_is_empty": (lambda: changed(3, path=""), {"skipped": 1}),
    "path_has_spaces": (lambda: changed(2, path="corpus. gen x"), {"skipped": 1}),
    "path_holds_terminal_escapes": (lambda: changed(5, path="corpus.\x1b[31mred\x1b[0m"), {"skipped": 0}),
    "node_id_holds_rich_markup": (lambda: changed(2, node="[red]gen[/red]", path="corpus.[bold]gen"),
                                  {"skipped": 0}),
    # node events
    "node_start_without_node": (lambda: changed(2, node=...), {"skipped": 1}),
    "node_start_type_is_a_list": (lambda: changed(2, type=["echo"]), {"skipped": 1}),
    "node_start_params_is_a_string": (lambda: changed(2, params="x"), {"skipped": 1}),
    "node_end_status_is_unknown": (lambda: changed(4, status="weird"), {"skipped": 1}),
    "node_end_error_is_a_string": (lambda: changed(4, status="error", error="boom"), {"skipped": 1}),
    "node_end_outputs_is_a_list": (lambda: changed(4, outputs=[1, 2]), {"skipped": 1}),
    "node_end_without_start": (lambda: inserted(5, {"seq": 5, "t": 0.05, "kind": "node.end",
                                                   "path": "corpus.ghost", "node": "ghost",
                                                   "status": "ok"}), {"skipped": 0}),
    # batch sizes: taken from the events present, never from the number
    "batch_count_is_10e8": (lambda: batch(count=10**8), {"skipped": 0}),
    "batch_count_is_10e11": (lambda: batch(count=10**11), {"skipped": 0}),
    "batch_count_is_negative": (lambda: batch(count=-5), {"skipped": 1}),
    "many_batches_each_count_10e8": (lambda: layout(events=[*base_events()[:6], *(
        {"seq": 7 + n, "t": 0.07, "kind": "node.start", "path": f"corpus.sq#{n + 2}", "node": "sq",
         "type": "echo", "batch": {**BATCH, "count": 10**8}} for n in range(300))]), {"skipped": 0}),
    "batch_count_is_a_string": (lambda: batch(count="3"), {"skipped": 1}),
    "batch_count_is_null_and_index_is_10e9": (
        lambda: layout(events=[*base_events()[:5], {**base_events()[5], "batch": {**BATCH, "count": None}},
                               {**base_events()[6], "index": 10**9, "path": "corpus.sq.iteration_1000000000"},
                               *base_events()[7:]]), {"skipped": 0}),
    "batch_is_a_list": (lambda: changed(6, batch=[1]), {"skipped": 1}),
    "batch_max_concurrent_is_0": (lambda: batch(max_concurrent=0), {"skipped": 1}),
    # items and branches
    "item_index_is_negative": (lambda: changed(7, index=-1), {"skipped": 1}),
    "item_index_is_a_string": (lambda: changed(7, index="0"), {"skipped": 1}),
    "item_index_is_10e12": (lambda: changed(7, index=10**12), {"skipped": 1}),
    "item_path_is_not_an_iteration": (lambda: changed(7, path="corpus.sq.iteration_x"), {"skipped": 1}),
    "item_attempts_is_10e6": (lambda: changed(8, attempts=10**6), {"skipped": 1}),
    "item_label_is_a_number": (lambda: changed(7, label=5), {"skipped": 1}),
    "item_end_without_start": (lambda: inserted(7, {"seq": 7, "t": 0.07, "kind": "item.end",
                                                   "path": "corpus.sq.iteration_7", "index": 7,
                                                   "status": "ok"}), {"skipped": 0}),
    "branch_index_is_10e9": (lambda: inserted(7, {"seq": 7, "t": 0.07, "kind": "branch.start",
                                                 "path": "corpus.sq.branch_0", "group": "g",
                                                 "index": 10**9, "start": "x"}), {"skipped": 0}),
    "wait_on_an_iteration_that_is_no_number": (
        lambda: inserted(7, {"seq": 7, "t": 0.07, "kind": "wait.start", "path": "corpus.sq.iteration_abc",
                             "on": "rate_limit", "attempt": 1, "limit": "x"}), {"skipped": 0}),
    "store_write_key_is_a_number": (lambda: changed(3, key=5), {"skipped": 1}),
    # the file's layout
    "pretty_printed": (lambda: pretty(base_events()), {"skipped": 0}),
    "pretty_printed_events_are_scalars": (lambda: pretty([1, "two", None, [3], {}]), {"skipped": 5}),
    "crlf_line_ends": (lambda: layout().replace(b"\n", b"\r\n"), {"skipped": 0}),
    "cut_short_inside_an_event": (lambda: layout(cut=True)[:-30], {"skipped": 0}),
    "footer_is_damaged": (lambda: layout()[:-40] + b"\n", {"skipped": 0}),
    "footer_outputs_is_a_list": (lambda: layout(footer={**FOOTER, "outputs": [1]}), {"skipped": 0}),
    "footer_status_is_a_number": (lambda: layout(footer={**FOOTER, "status": 5}), {"skipped": 0}),
    "header_only": (lambda: layout(events=[], cut=True), {"skipped": 0}),
    "header_pid_is_10e30_and_cut_short": (lambda: layout(header={**HEADER, "pid": 10**30}, cut=True),
                                          {"skipped": 0}),
    # refused: the header is bad, or no trace
    "header_is_not_json": (lambda: b'{"format":"pflow-tui-trace",,,"events":[\n'
                                   + layout().split(b"\n", 1)[1],
                           {"refused": True}),
    "header_format_is_wrong": (lambda: header(format="other"), {"refused": True}),
    "header_version_is_99": (lambda: header(version=99), {"refused": True}),
    "header_version_is_a_string": (lambda: header(version="1"), {"refused": True}),
    "header_flow_is_a_string": (lambda: header(flow="x"), {"refused": True}),
    "header_inputs_is_a_list": (lambda: header(inputs=[1]), {"refused": True}),
    "header_is_a_list": (lambda: b'[1,"events",\n' + layout().split(b"\n", 1)[1], {"refused": True}),
    "empty_file": (lambda: b"", {"refused": True}),
    "not_json_at_all": (lambda: b"hello, world\n", {"refused": True}),
    "pretty_printed_events_is_not_a_list": (lambda: json.dumps({**HEADER, "events": 5, **FOOTER}).encode(),
                                            {"refused": True}),
}


def main() -> int:
    cases = {}
    for name, (make, expect) in CASES.items():
        (HERE / f"{name}.json").write_bytes(make())
        cases[name] = expect
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} traces to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
