"""Benchmark intent classification against plain text normalisation, per message.

Run with ``python -m benchmarks.bench_intents [n_messages]``; prints JSON. No Django needed.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chat.intents import DEFAULT_INTENT_KEYWORDS, IntentClassifier, default_classifier, normalize

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "chat" / "data" / "intents_labelled.tsv"
BATCH_SIZE = 100


def load_messages() -> list[str]:
    """Return the messages of the labelled intent data set, without their labels."""
    lines = LABELLED.read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines if line.strip()]


def _lower_split(text: str) -> list[str]:
    """The cheapest reasonable tokenisation, as a floor to compare against."""
    return text.lower().split()


def _per_message_us(
    funcs: dict[str, Callable[[str], object]], messages: list[str], n_messages: int
) -> dict[str, list[float]]:
    """Time each function on the same batches, interleaved, and return µs per message for every batch.

    Interleaving means a burst of load on the machine slows every contender alike, which keeps the
    ratios meaningful on a busy host.
    """
    for func in funcs.values():
        # An untimed pass warms caches so the first batch is not an outlier.
        for text in messages:
            func(text)
    stream = (messages * (n_messages // len(messages) + 1))[:n_messages]
    timings: dict[str, list[float]] = {name: [] for name in funcs}
    clock = time.perf_counter_ns
    for start in range(0, len(stream), BATCH_SIZE):
        batch = stream[start : start + BATCH_SIZE]
        for name, func in funcs.items():
            began = clock()
            for text in batch:
                func(text)
            timings[name].append((clock() - began) / 1000 / len(batch))
    return timings


def _summary(per_batch_us: list[float]) -> dict[str, float]:
    """Mean, median and 99th percentile of per-message times, in microseconds."""
    return {
        "mean_us": round(statistics.fmean(per_batch_us), 3),
        "p50_us": round(statistics.median(per_batch_us), 3),
        "p99_us": round(statistics.quantiles(per_batch_us, n=100, method="inclusive")[98], 3),
    }


def measure(n_messages: int = 20000) -> dict[str, object]:
    """Time the default classifier, normalize() and str.lower().split() over the labelled messages."""
    messages = load_messages()
    began = time.perf_counter_ns()
    IntentClassifier.from_keywords(DEFAULT_INTENT_KEYWORDS)
    build_ms = (time.perf_counter_ns() - began) / 1e6

    timings = _per_message_us(
        {"classify": default_classifier().classify, "normalize": normalize, "lower_split": _lower_split},
        messages,
        n_messages,
    )
    stats = {name: _summary(values) for name, values in timings.items()}
    return {
        "n_messages": n_messages,
        "distinct_messages": len(messages),
        "batch_size": BATCH_SIZE,
        "build_classifier_ms": round(build_ms, 3),
        "classify": stats["classify"],
        "baseline_normalize": stats["normalize"],
        "baseline_lower_split": stats["lower_split"],
        "ratio_classify_to_normalize": {
            "mean": round(stats["classify"]["mean_us"] / stats["normalize"]["mean_us"], 2),
            "p50": round(stats["classify"]["p50_us"] / stats["normalize"]["p50_us"], 2),
        },
        "ratio_classify_to_lower_split": {
            "mean": round(stats["classify"]["mean_us"] / stats["lower_split"]["mean_us"], 2),
            "p50": round(stats["classify"]["p50_us"] / stats["lower_split"]["p50_us"], 2),
        },
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 20000), indent=2))
