"""Intent detection: normalisation, whole-word matching, tie-breaks, tenant keywords and accuracy."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from chat.intents import (
    DEFAULT_INTENT_KEYWORDS,
    OTHER,
    IntentClassifier,
    IntentResult,
    classifier_for,
    classify,
    contains_phrase,
    default_classifier,
    effective_keywords,
    normalize,
)

LABELLED = Path(__file__).parent / "data" / "intents_labelled.tsv"
# Measured on the 347-message set: 0.980 (340/347). The set grew in batches and two batches written after
# the keyword lists were tuned scored 0.746 and 0.769 before they were tuned on too, so expect roughly 75%
# on genuinely new phrasing; this threshold guards against regressions, it is not a claim of 95% in the wild.
ACCURACY_THRESHOLD = 0.95


def load_labelled() -> list[tuple[str, str]]:
    """Return the labelled data set as (intent, message) pairs."""
    rows = []
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        if line.strip():
            intent, message = line.split("\t", 1)
            rows.append((intent, message))
    return rows


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("¿Cuánto CUESTA?", "cuanto cuesta"),
        ("Don't", "dont"),
        ("Don\u2019t", "dont"),  # typographic apostrophe
        ("l'adresse", "l adresse"),
        ("Straße", "strasse"),
        ("e-mail_me!!", "e mail me"),
        ("\uff28\uff45\uff4c\uff4c\uff4f", "hello"),  # fullwidth "Hello"
        ("naïve café", "naive cafe"),
        ("  Hi...   there  ", "hi there"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "intent", "matched"),
    [
        # Whole words only.
        ("Is the price OK?", "pricing", ("price",)),
        ("Is this priceless?", OTHER, ()),
        ("I want to book", "booking", ("book",)),
        ("I found you on Facebook", OTHER, ()),
        ("facebook page", OTHER, ()),
        ("Do you have a notebook?", OTHER, ()),
        # Case, accents and punctuation.
        ("¡¡¡PRECIO!!!", "pricing", ("precio",)),
        ("¿Dónde están?", "location", ("donde estan",)),
        ("Wie sind Ihre Öffnungszeiten?", "opening_hours", ("offnungszeiten",)),
        ("opening-hours?", "opening_hours", ("opening hours",)),
        ("Reservé una mesa", "booking", ("reserve",)),
        # Phrases match as a whole and the longest phrase at a position wins.
        ("Are you open today?", "opening_hours", ("are you open",)),
        ("Where is my order?", "support", ("where is my", "order")),
        ("Can someone call me back?", "contact_request", ("call me back",)),
        # No match.
        ("Thanks a lot", OTHER, ()),
        ("", OTHER, ()),
    ],
)
def test_classify_matches(text: str, intent: str, matched: tuple[str, ...]) -> None:
    result = classify(text)

    assert (result.intent, result.matched) == (intent, matched)


def test_no_match_is_other_with_empty_result() -> None:
    assert classify("lol") == IntentResult(intent=OTHER, matched=(), scores={})


def test_consumed_phrase_does_not_count_for_another_intent() -> None:
    # "where" alone is a location keyword, but here it is part of the support phrase "where is my".
    assert classify("Where is my ORDER #123?") == IntentResult(
        intent="support", matched=("where is my", "order"), scores={"support": 2}
    )


def test_greeting_loses_to_any_other_intent() -> None:
    assert classify("Hi, how much is a haircut?") == IntentResult(
        intent="pricing", matched=("how much",), scores={"greeting": 1, "pricing": 1}
    )


def test_greeting_alone() -> None:
    assert classify("Hello there!") == IntentResult(
        intent="greeting",
        matched=("hello there",),
        scores={"greeting": 1},
    )


def test_complaint_outranks_more_keywords_elsewhere() -> None:
    result = classify("The prices went up and the cost of delivery is ridiculous")

    assert result == IntentResult(
        intent="complaint",
        matched=("ridiculous",),
        scores={"pricing": 2, "support": 1, "complaint": 1},
    )


def test_handoff_outranks_complaint() -> None:
    assert classify("This is terrible, let me talk to a human") == IntentResult(
        intent="human_handoff",
        matched=("talk to a", "human"),
        scores={"complaint": 1, "human_handoff": 2},
    )


def test_most_keywords_wins() -> None:
    assert classify("Can I book an appointment, what's the price?") == IntentResult(
        intent="booking", matched=("book", "appointment"), scores={"booking": 2, "pricing": 1}
    )


def test_equal_scores_follow_the_fixed_order() -> None:
    assert classify("I want to book, how much is it?") == IntentResult(
        intent="pricing", matched=("how much",), scores={"booking": 1, "pricing": 1}
    )


def test_repeated_keyword_counts_once() -> None:
    assert classify("price price PRICE") == IntentResult(
        intent="pricing",
        matched=("price",),
        scores={"pricing": 1},
    )


def test_tenant_can_add_keywords() -> None:
    overrides = {"booking": [*DEFAULT_INTENT_KEYWORDS["booking"], "tee time"]}
    text = "Any tee time left for Saturday?"

    assert classify(text).intent == OTHER
    assert classify(text, overrides) == IntentResult(
        intent="booking",
        matched=("tee time",),
        scores={"booking": 1},
    )


def test_tenant_can_remove_keywords() -> None:
    overrides = {"location": [k for k in DEFAULT_INTENT_KEYWORDS["location"] if k != "parking"]}

    assert classify("Is there parking?").intent == "location"
    assert classify("Is there parking?", overrides) == IntentResult(intent=OTHER, matched=(), scores={})


def test_tenant_can_disable_an_intent() -> None:
    classifier = IntentClassifier.from_keywords(effective_keywords({"greeting": []}))

    assert classifier.classify("hello") == IntentResult(intent=OTHER, matched=(), scores={})
    assert "greeting" not in classifier.intents


def test_tenant_keywords_are_reported_as_written_and_matched_normalised() -> None:
    overrides = {"booking": ["Réserver une table", "Don't forget"]}

    result = classify("je voudrais RESERVER une table, dont forget", overrides)

    assert result == IntentResult(
        intent="booking", matched=("Réserver une table", "Don't forget"), scores={"booking": 2}
    )


def test_tenant_defined_intent_ranks_after_the_defaults_on_ties() -> None:
    overrides = {"gift_cards": ["gift card", "gift cards", "voucher", "vouchers"]}

    assert classify("Do you sell gift vouchers?", overrides) == IntentResult(
        intent="gift_cards", matched=("vouchers",), scores={"gift_cards": 1}
    )
    assert classify("How much is a gift card?", overrides) == IntentResult(
        intent="pricing", matched=("how much",), scores={"pricing": 1, "gift_cards": 1}
    )


def test_same_keyword_in_two_intents_scores_both() -> None:
    classifier = IntentClassifier.from_keywords({"pricing": ["quote"], "booking": ["quote", "book"]})

    assert classifier.classify("quote and book") == IntentResult(
        intent="booking", matched=("quote", "book"), scores={"pricing": 1, "booking": 2}
    )


def test_from_keywords_uses_only_the_given_mapping() -> None:
    classifier = IntentClassifier.from_keywords({"greeting": ["hi"], "pricing": ["price"]})

    assert classifier.intents == ("pricing", "greeting")
    assert classifier.classify("book a table").intent == OTHER


def test_blank_keywords_are_ignored() -> None:
    classifier = IntentClassifier.from_keywords({"pricing": ["", "  ", "?!", "price"]})

    assert classifier.classify("?! price").matched == ("price",)


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        ({"other": ["whatever"]}, ValueError),
        ({"Bad Code": ["x"]}, ValueError),
        ({"": ["x"]}, ValueError),
        ({"pricing": "price"}, TypeError),
    ],
)
def test_invalid_configuration_is_rejected(mapping: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        IntentClassifier.from_keywords(mapping)


def test_effective_keywords_overrides_only_the_given_intents() -> None:
    merged = effective_keywords({"pricing": ["tarifa plana"], "gift_cards": ["voucher"]})

    assert merged["pricing"] == ["tarifa plana"]
    assert merged["booking"] == DEFAULT_INTENT_KEYWORDS["booking"]
    assert merged["gift_cards"] == ["voucher"]


def test_classifier_for_builds_once_per_key() -> None:
    key = ("tenant_a", 1)

    first = classifier_for(key, {"pricing": ["tarifa plana"]})
    again = classifier_for(key, {"pricing": ["ignored because the key did not change"]})
    newer = classifier_for(("tenant_a", 2), {"pricing": ["precio fijo"]})

    assert again is first
    assert first.classify("tarifa plana?").intent == "pricing"
    assert newer is not first
    assert newer.classify("tarifa plana?").intent == OTHER
    assert newer.classify("precio fijo?").intent == "pricing"


def test_default_classifier_is_cached() -> None:
    assert default_classifier() is default_classifier()


def test_contains_phrase() -> None:
    phrases = ["human", "Speak to", "agent", "HUMAN"]

    assert contains_phrase("Can I speak to a HUMAN, please?", phrases) == ["human", "Speak to"]
    assert contains_phrase("That was inhuman", ["human"]) == []
    spanish = "Quiero hablar con una persona"
    assert contains_phrase(spanish, ["hablar con", "hablar"]) == ["hablar con", "hablar"]
    assert contains_phrase("anything", ["", "  "]) == []


def test_contains_phrase_reports_in_the_phrases_order_whatever_the_text_s_order() -> None:
    phrases = ["how much", "where", "how", "much is it", "How  much"]

    assert contains_phrase("Where is it and how much is it, how much?", phrases) == [
        "how much",
        "where",
        "how",
        "much is it",
    ]
    assert contains_phrase("Muchos? No: how", phrases) == ["how"]
    assert contains_phrase("", phrases) == []


def test_labelled_set_is_large_and_balanced() -> None:
    counts = Counter(intent for intent, _ in load_labelled())

    assert set(counts) == {*DEFAULT_INTENT_KEYWORDS, OTHER}
    assert sum(counts.values()) >= 150
    assert min(counts.values()) >= 15


def test_accuracy_on_labelled_set(record_property: Callable[[str, object], None]) -> None:
    rows = load_labelled()
    classifier = default_classifier()

    misses = [(intent, text, classifier.classify(text).intent) for intent, text in rows]
    misses = [miss for miss in misses if miss[0] != miss[2]]
    accuracy = 1 - len(misses) / len(rows)
    record_property("intent_accuracy", round(accuracy, 4))
    print(f"\nintent accuracy: {accuracy:.3f} ({len(rows) - len(misses)}/{len(rows)})")
    for expected, text, got in misses:
        print(f"  expected {expected:<16} got {got:<16} {text}")

    assert accuracy >= ACCURACY_THRESHOLD


def test_classification_takes_microseconds() -> None:
    messages = [text for _, text in load_labelled()]
    classifier = default_classifier()

    start = time.perf_counter()
    for text in messages * 10:
        classifier.classify(text)
    per_message = (time.perf_counter() - start) / (len(messages) * 10)

    # Generous bound (typically ~10 µs) so a slow CI machine does not flake; benchmarks/ has real numbers.
    assert per_message < 0.0005
