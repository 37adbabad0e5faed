"""An offline map-reduce written directly in Python with PocketFlow (no JSON).

Debug it with ``pflow-tui sample_flows/map_reduce.py:flow``, or run it headless with
``pflow-tui run sample_flows/map_reduce.py:flow`` (``documents=40`` makes more of them).
As a plain program: ``python sample_flows/map_reduce.py``.

The shape:

    load_corpus -> map_documents -> per_topic -> reduce_report

- ``load_corpus`` (Node) makes N synthetic documents (deterministic text, no files).
- ``map_documents`` (AsyncParallelBatchNode) "summarises" every document at once: each
  takes 50 to 250 ms (simulated latency). One in seven fails its first attempt (a flaky
  service) and succeeds on the retry; document 13, if there is one, always fails and
  falls back to an empty summary (``exec_fallback_async``).
- ``per_topic`` (BatchFlow, nested) runs a two-node sub-flow once per topic:
  ``collect_topic`` gathers the summaries that mention the topic, ``score_topic`` scores
  them. ``score_topic`` branches on its action: ``hot`` or ``cold``.
- ``reduce_report`` (Node) writes the final report into ``shared["report"]``.
"""

from __future__ import annotations

import asyncio
import hashlib

from pocketflow import AsyncFlow, AsyncParallelBatchNode, BatchFlow, Node

TOPICS = ("latency", "retries", "memory", "parsing")
WORDS = ("the", "service", "latency", "retries", "memory", "parsing", "cache", "queue",
         "worker", "timeout", "budget", "trace")


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class LoadCorpus(Node):
    """Make the synthetic documents (how many: shared["documents"], default 24)."""

    def prep(self, shared):
        return int(shared.get("documents", 24))

    def exec(self, count):
        docs = []
        for i in range(count):
            words = [WORDS[(_digest(f"{i}:{j}") >> 3) % len(WORDS)] for j in range(12 + i % 9)]
            docs.append({"id": i, "text": " ".join(words)})
        return docs

    def post(self, shared, prep_res, docs):
        shared["corpus"] = docs


class MapDocuments(AsyncParallelBatchNode):
    """Summarise every document concurrently (simulated latency, a flaky first attempt)."""

    def __init__(self):
        super().__init__(max_retries=2, wait=0.01)
        self.tries: dict[int, int] = {}

    async def prep_async(self, shared):
        return shared["corpus"]

    async def exec_async(self, doc):
        self.tries[doc["id"]] = self.tries.get(doc["id"], 0) + 1
        await asyncio.sleep(0.05 + (_digest(doc["text"]) % 200) / 1000)
        if doc["id"] == 13:
            raise ConnectionError(f"summariser refused document {doc['id']}: payload too large")
        if doc["id"] % 7 == 3 and self.tries[doc["id"]] == 1:
            raise TimeoutError(f"summariser timed out on document {doc['id']}")
        words = doc["text"].split()
        return {"id": doc["id"], "words": len(words), "topics": sorted(set(words) & set(TOPICS))}

    async def exec_fallback_async(self, doc, exc):
        return {"id": doc["id"], "words": 0, "topics": [], "failed": str(exc)}

    async def post_async(self, shared, prep_res, summaries):
        shared["summaries"] = summaries


class CollectTopic(Node):
    """The summaries that mention this iteration's topic."""

    def prep(self, shared):
        return self.params["topic"], shared["summaries"]

    def exec(self, prep_res):
        topic, summaries = prep_res
        return [s["id"] for s in summaries if topic in s["topics"]]

    def post(self, shared, prep_res, ids):
        shared.setdefault("topics", {})[self.params["topic"]] = {"documents": ids}


class ScoreTopic(Node):
    """Score a topic: the share of documents that mention it; "hot" above 0.65."""

    def prep(self, shared):
        return shared["topics"][self.params["topic"]], len(shared["summaries"])

    def exec(self, prep_res):
        entry, total = prep_res
        return round(len(entry["documents"]) / max(total, 1), 3)

    def post(self, shared, prep_res, score):
        shared["topics"][self.params["topic"]]["score"] = score
        return "hot" if score > 0.65 else "cold"


class MarkHot(Node):
    """List a hot topic."""

    def post(self, shared, prep_res, exec_res):
        shared.setdefault("hot", []).append(self.params["topic"])


class MarkCold(Node):
    """List a cold topic."""

    def post(self, shared, prep_res, exec_res):
        shared.setdefault("cold", []).append(self.params["topic"])


class PerTopic(BatchFlow):
    """Run collect -> score -> mark hot / cold once per topic."""

    def prep(self, shared):
        return [{"topic": t} for t in TOPICS]


class ReduceReport(Node):
    """Combine everything into one report."""

    def prep(self, shared):
        return shared["summaries"], shared["topics"], shared.get("hot", [])

    def exec(self, prep_res):
        summaries, topics, hot = prep_res
        failed = [s["id"] for s in summaries if s.get("failed")]
        ranked = sorted(topics, key=lambda t: -topics[t]["score"])
        return (f"{len(summaries)} documents, {sum(s['words'] for s in summaries)} words; "
                f"topics by score: {', '.join(ranked)}; hot: {', '.join(hot) or 'none'}; "
                f"failed: {failed or 'none'}")

    def post(self, shared, prep_res, report):
        shared["report"] = report


def flow() -> AsyncFlow:
    """Build the map-reduce flow (a fresh one per run)."""
    collect, score = CollectTopic(), ScoreTopic()
    collect >> score
    score - "hot" >> MarkHot()
    score - "cold" >> MarkCold()
    per_topic = PerTopic(start=collect)
    load, mapper, reduce = LoadCorpus(), MapDocuments(), ReduceReport()
    load >> mapper >> per_topic >> reduce
    return AsyncFlow(start=load)


def shared() -> dict:
    """The store a run starts with."""
    return {"documents": 24}


if __name__ == "__main__":
    store = shared()
    asyncio.run(flow().run_async(store))
    print(store["report"])

