"""Every flow in sample_flows/ validates cleanly, runs offline, and computes what it says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pflow_tui.engine.ir.load import load_flow
from pflow_tui.engine.ir.spec import FlowSpec
from pflow_tui.engine.run.executor import RunResult, run_flow
from pflow_tui.engine.run.inputs import prepare_inputs

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
CHOICES = {"positive", "negative", "neutral"}


def load(name: str) -> FlowSpec:
    return load_flow(SAMPLES / f"{name}.json")


def run(name: str, tmp_path: Path, trace: str = "trace.json", **inputs: Any) -> RunResult:
    spec = load(name)
    (tmp_path / trace).unlink(missing_ok=True)  # a test may run twice: the latest run's trace
    result = run_flow(spec, prepare_inputs(spec, inputs, as_text=True),
                      trace=tmp_path / trace)
    assert result.status == "ok", result.error
    assert (tmp_path / trace).is_file()
    return result


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a scratch directory: no sample may depend on the repository as cwd."""
    monkeypatch.chdir(tmp_path)


def test_all_samples_are_listed() -> None:
    assert sorted(p.stem for p in SAMPLES.glob("*.json")) == sorted([
        "agent_loop", "big_batch", "cluster_scoring", "cpu_and_limits", "fanout_merge", "inputs_outputs",
        "judges", "llm_classify", "nested_index", "parallel_batch_failures", "pipeline", "read_process_write",
        "sequential_batch"])


#: the warnings a sample has on purpose: what runs here but not the same on pflow
#: (docs/compatibility.md): a loop, a workflow node, a template followed by one newline
PFLOW_NOTES = {"agent_loop": ["nodes[0]"], "pipeline": ["nodes[1].type"],
               "read_process_write": ["nodes[3].params.content"]}


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_sample_is_valid_without_warnings(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert isinstance(doc.get("name"), str) and doc["name"] == path.stem
    assert isinstance(doc.get("description"), str) and len(doc["description"]) > 40
    spec = load_flow(path)
    assert [w.where for w in spec.warnings] == PFLOW_NOTES.get(path.stem, [])
    assert all("pflow" in w.what for w in spec.warnings)


def test_sequential_batch(tmp_path: Path) -> None:
    result = run("sequential_batch", tmp_path)
    square = result.store["square"]
    assert [r["stdout"] for r in square["results"]] == ["1", "4", "9", "16", "25", "36"]
    assert [r["item"] for r in square["results"]] == [1, 2, 3, 4, 5, 6]
    assert square["batch_metadata"]["execution_mode"] == "sequential"
    assert square["errors"] is None
    assert result.outputs == {
        "summary": "6 squares (mode sequential): first 1, last 36, sum 91",
        "sum_of_squares": "91",
        "squares_ok": 6,
    }


FAILING_TASKS = [i for i in range(40) if i % 7 == 3]


def test_parallel_batch_failures(tmp_path: Path) -> None:
    result = run("parallel_batch_failures", tmp_path)
    batch = result.store["run-tasks"]
    assert FAILING_TASKS == [3, 10, 17, 24, 31, 38]
    assert batch["count"] == 40
    assert batch["error_count"] == len(FAILING_TASKS)
    assert batch["success_count"] == 40 - len(FAILING_TASKS)
    assert [e["index"] for e in batch["errors"]] == FAILING_TASKS
    assert [e["item"]["id"] for e in batch["errors"]] == FAILING_TASKS
    for e in batch["errors"]:
        assert e["error"] == f"Command failed with exit code 3: task {e['index']}: checksum mismatch\n"
        assert e["exception"] is None  # a handled failure (error key), not an exception
    for i, r in enumerate(batch["results"]):  # input order, whatever the completion order
        assert r["item"]["id"] == i
        if i in FAILING_TASKS:
            assert r["exit_code"] == 3 and "error" in r
        else:
            assert r["stdout"] == f"task {i} done after {r['item']['delay']}s"
    meta = batch["batch_metadata"]
    assert meta["parallel"] is True and meta["max_concurrent"] == 8
    assert meta["execution_mode"] == "parallel"
    # 40 tasks sleeping 0.05-0.41 s, 8 at a time: the run is watchable, not instant
    assert 0.05 * 1000 <= meta["timing"]["min_item_ms"] < meta["timing"]["max_item_ms"]
    assert meta["timing"]["max_item_ms"] >= 410
    assert result.outputs == {
        "report": "6 of 40 tasks failed, 34 succeeded (parallel, max 8 at a time)",
        "failures": 6,
        "failed_ids": "3 10 17 24 31 38",
    }


def _answers(result: RunResult) -> list[str | None]:
    return [r["response"] if r else None for r in result.store["classify"]["results"]]


@pytest.mark.slow
def test_llm_classify(tmp_path: Path) -> None:
    first = run("llm_classify", tmp_path, "one.json")
    batch = first.store["classify"]
    assert batch["count"] == 50
    answers = _answers(first)
    failed = [i for i, a in enumerate(answers) if a is None]
    assert failed == [20]  # this review fails all three attempts (15% fail rate, by design)
    assert batch["errors"][0]["index"] == 20
    assert "Simulated offline LLM failure (attempt 3)" in batch["errors"][0]["error"]
    assert {a for a in answers if a is not None} == CHOICES
    assert batch["success_count"] == 49 and batch["error_count"] == 1
    assert batch["batch_metadata"]["max_retries"] == 3
    assert batch["batch_metadata"]["max_concurrent"] == 5
    # some items failed first and succeeded on a retry: the trace has their attempt counts
    trace = json.loads((tmp_path / "one.json").read_text())
    attempts = {e["index"]: e["attempts"] for e in trace["events"]
                if e["kind"] == "item.end" and e["path"].startswith("llm_classify.classify.")}
    assert len(attempts) == 50
    assert {i: n for i, n in attempts.items() if n > 1} == {
        5: 2, 19: 2, 20: 3, 26: 3, 27: 2, 29: 2, 30: 2, 34: 2, 36: 2, 46: 2}
    counts = json.loads(first.outputs["counts"])
    assert counts == {"failed": 1, "negative": 20, "neutral": 16, "positive": 13}
    assert first.outputs["failed"] == 1 and first.outputs["classified"] == 49

    second = run("llm_classify", tmp_path, "two.json")
    assert _answers(second) == answers
    assert second.outputs == first.outputs


def test_nested_index(tmp_path: Path) -> None:
    result = run("nested_index", tmp_path)
    assert [r["stdout"] for r in result.store["survey"]["results"]] == [
        "Planet mercury (index 0) has 0 moons",
        "Planet earth (index 1) has 1 moons",
        "Planet mars (index 2) has 2 moons",
        "Planet neptune (index 3) has 16 moons",
    ]
    assert [r["stdout"] for r in result.store["annotate"]["results"]] == [
        "Innermost: Planet mercury (index 0) has 0 moons [rocky]",
        "Home: Planet earth (index 1) has 1 moons [rocky]",
        "Red: Planet mars (index 2) has 2 moons [rocky]",
        "Outermost: Planet neptune (index 3) has 16 moons [ice giant]",
    ]
    assert result.outputs == {
        "first_line": "Innermost: Planet mercury (index 0) has 0 moons [rocky]",
        "last_line": "Outermost: Planet neptune (index 3) has 16 moons [ice giant]",
        "surveyed": 4,
    }


def test_inputs_outputs_defaults(tmp_path: Path) -> None:
    result = run("inputs_outputs", tmp_path)
    assert result.outputs == {
        "greeting": "Hello, world!",
        "summary": "greeted world 1 time(s), shout=False, 13 characters",
        "modified": False,
    }
    for name in ("greeting", "summary", "modified"):  # outputs land at the store's root
        assert result.store[name] == result.outputs[name]


def test_inputs_outputs_overrides(tmp_path: Path) -> None:
    result = run("inputs_outputs", tmp_path, who="Ada", times="3", shout="true")
    assert result.store["greet"]["metadata"] == {
        "original_message": "Hello, Ada!", "count": 3, "modified": True}
    assert result.outputs == {
        "greeting": "HELLO, ADA! HELLO, ADA! HELLO, ADA!",
        "summary": "greeted Ada 3 time(s), shout=True, 35 characters",
        "modified": True,
    }


def test_read_process_write(tmp_path: Path) -> None:
    result = run("read_process_write", tmp_path)
    root = tmp_path / ".pflow-tui" / "samples" / "read_process_write"
    assert result.outputs["dir"] == str(root)
    assert result.outputs["written"] == 3
    assert result.store["read"]["results"][0]["content"] == (
        "1: the quick brown fox\n2: jumps over the lazy dog\n")
    assert (root / "out" / "fox.txt").read_text() == "THE QUICK BROWN FOX\nJUMPS OVER THE LAZY DOG\n"
    assert (root / "out" / "haiku.txt").read_text() == (
        "AN OLD SILENT POND\nA FROG JUMPS INTO THE POND\nSPLASH! SILENCE AGAIN\n")
    assert (root / "out" / "hello.txt").read_text() == "HELLO, FILES\n"
    assert sorted(p.name for p in (root / "out").iterdir()) == ["fox.txt", "haiku.txt", "hello.txt"]
    assert result.outputs["first_lines"] == (
        "out/fox.txt: THE QUICK BROWN FOX\n"
        "out/haiku.txt: AN OLD SILENT POND\n"
        "out/hello.txt: HELLO, FILES")
    # written is pflow's message string, not a bool
    assert result.store["write"]["results"][2]["written"] == (
        f"Successfully wrote to '{root / 'out' / 'hello.txt'}'")
    # a second run overwrites the same files
    again = run("read_process_write", tmp_path, "again.json")
    assert again.outputs == result.outputs


def test_big_batch(tmp_path: Path) -> None:
    result = run("big_batch", tmp_path)
    classify = result.store["classify"]
    assert classify["count"] == classify["success_count"] == 3000
    assert classify["batch_metadata"]["batch_size"] == 40
    answers = [r["response"] for r in classify["results"]]  # read back from the results file
    assert set(answers) <= CHOICES and len(answers) == 3000
    assert [r["item"] for r in classify["results"][:2]] == [
        "review 1: works, but the battery could last longer",
        "review 2: works, but the battery could last longer"]
    assert [r["echo"] for r in result.store["shout"]["results"][:2]] == [
        f"0: {answers[0].upper()}", f"1: {answers[1].upper()}"]
    assert result.outputs == {"report": f"3000 of 3000 reviews classified; the last one: "
                                        f"{answers[-1]} (2999: {answers[-1].upper()})"}
    ref = json.loads((tmp_path / "trace.json").read_text())["store"]["classify"]["results"]
    assert ref == {"jsonl_file": "trace.results/big_batch.classify.jsonl", "count": 3000}


def test_judges_aggregates_and_vote(tmp_path: Path) -> None:
    result = run("judges", tmp_path)
    words = result.store["words"]
    assert [r["stdout"] for r in words["results"]] == ["6", "5", "4", "", "11", "8", "8"]
    assert "error" in words["results"][3]  # skipped by the aggregates
    assert words["errors"][0]["index"] == 3 and "empty review" in words["errors"][0]["error"]
    assert result.store["panel"]["branch_results"] == [result.store[n] for n in ("strict", "kind", "patient")]
    assert [result.store[n]["response"] for n in ("strict", "kind", "patient")] == ["2", "2", "5"]
    verdict = result.store["verdict"]
    assert verdict["result"] == "2" and verdict["tie"] is False
    assert verdict["votes"] == [{"value": "2", "count": 2, "branches": ["strict", "kind"]},
                                {"value": "5", "count": 1, "branches": ["patient"]}]
    assert result.outputs == {
        "report": "6 of 7 reviews counted: 42 words, mean 7.0, p50 6, p95 11, longest 11. "
                  "Judges: mean rating 3.0 (2 to 5), vote 2 with 2 of 3 votes.",
        "mean_words": 7.0, "rating": "2"}


def test_cpu_and_limits(tmp_path: Path) -> None:
    from pflow_tui.engine.trace.writer import read_trace

    result = run("cpu_and_limits", tmp_path)
    primes = result.store["primes"]["results"]
    assert [(r["item"], r["result"]) for r in primes] == [
        (5000, 669), (10000, 1229), (15000, 1754), (20000, 2262), (25000, 2762), (30000, 3245)]
    assert primes[0]["stdout"] == "669 primes below 5000\n"
    assert result.outputs["total"] == 11921
    assert {r["response"] for r in result.store["size"]["results"]} <= {"many", "few"}
    events = read_trace(tmp_path / "trace.json").events
    waits = [e for e in events if e["kind"] == "wait.start"]
    assert waits and {(w["on"], w.get("key")) for w in waits} <= {("rate_limit", "llm"), ("processes", None)}
    # the llm calls of all three branches never exceed the flow's limit of 3 at once: a call
    # holds the limit from its start (or the end of its wait) to its end
    begin: dict[str, int] = {}
    spans = []
    for e in events:
        if ".branch_" not in e["path"]:
            continue
        if e["kind"] == "item.start" or (e["kind"] == "node.start" and "batch" not in e) or (
                e["kind"] == "wait.end" and e["status"] == "ok"):
            begin[e["path"]] = e["seq"]
        elif e["kind"] == "wait.start":
            begin.pop(e["path"], None)
        elif e["kind"] in ("item.end", "node.end") and e["path"] in begin:
            spans.append((begin.pop(e["path"]), e["seq"]))
    assert len(spans) == 13  # 6 + 6 items and the title
    top = max(sum(1 for a, b in spans if a <= seq < b) for seq, _ in spans)
    assert top == 3


def test_cluster_scoring_on_a_local_cluster(tmp_path: Path) -> None:
    """As written: a local Dask cluster started and stopped by the run; document 13 fails
    after its 2 retries, the batch goes on, rank ranks the 29 others."""
    pytest.importorskip("distributed")
    from pflow_tui.engine.trace.writer import read_trace

    result = run("cluster_scoring", tmp_path, documents=8 * 2)
    score = result.store["score"]
    assert (score["count"], score["success_count"], score["error_count"]) == (16, 15, 1)
    assert "document 13 is unreadable" in str(score["errors"])
    assert result.store["rank"]["result"]["scored"] == 15
    assert result.store["rank"]["result"]["failed"] == 1
    assert result.store["rank"]["result"]["top"][0] == 5  # 225 words: the highest score
    events = read_trace(tmp_path / "trace.json").events
    ends = {e["path"]: e for e in events if e["kind"] == "item.end"}
    assert all(e.get("worker", "").startswith("tcp://") for e in ends.values())
    assert ends["cluster_scoring.score.iteration_13"]["attempts"] == 3
