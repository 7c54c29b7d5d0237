"""The responder's per-process memos: a turn's question analysed once, a quoted passage analysed once."""

from __future__ import annotations

from chat import engine, text
from chat.lexical import Term
from chat.retrieval import RetrievedPassage


def test_a_question_s_language_is_guessed_once_for_retrieval_and_the_reply() -> None:
    text._language_guess.cache_clear()
    question = "¿Cuánto cuesta el envío a Canarias?"

    assert text.language_detect(question, "en") == "es"
    assert text.language_detect(question, "en") == "es"
    assert text.language_guess(question, "en") == "es"
    assert (text._language_guess.cache_info().hits, text._language_guess.cache_info().misses) == (2, 1)


def test_an_article_s_language_is_guessed_without_keeping_its_text() -> None:
    text._language_guess.cache_clear()
    article = "Wir liefern nach Österreich und in die Schweiz. " * 60

    assert text.language_detect(article, "en") == "de"
    assert text._language_guess.cache_info().currsize == 0


def test_the_language_guess_without_stop_words_still_weighs_how_common_the_words_are() -> None:
    assert text.language_guess("¿Venden patinetes?", "en") == "es"
    assert text.language_guess("zzzz qqqq", "en") is None


def test_a_passage_quoted_twice_is_analysed_once_and_quoted_the_same() -> None:
    engine._passage_analysis.cache_clear()
    passage = RetrievedPassage(
        id=7,
        article_id=3,
        title="Shipping",
        content="We ship to Canada in 3 to 5 business days for 12 dollars. Orders over 80 dollars ship free.",
        rank=1.0,
    )
    terms = [Term(word="canada", lexemes=frozenset({"canada"}), weight=1.0)]

    first = engine.answer_sentences(passage=passage, terms=terms, question="How long to Canada?")
    again = engine.answer_sentences(passage=passage, terms=terms, question="Shipping to Canada, how long?")

    assert first == again == "We ship to Canada in 3 to 5 business days for 12 dollars."
    info = engine._passage_analysis.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_a_long_passage_is_quoted_without_keeping_its_analysis() -> None:
    engine._passage_analysis.cache_clear()
    content = "We ship to Canada in 3 to 5 business days. " + "Our parcels are packed with care. " * 130
    passage = RetrievedPassage(id=8, article_id=3, title="Shipping", content=content, rank=1.0)
    terms = [Term(word="canada", lexemes=frozenset({"canada"}), weight=1.0)]

    answer = engine.answer_sentences(passage=passage, terms=terms, question="Do you ship to Canada?")

    assert answer == "We ship to Canada in 3 to 5 business days."
    assert engine._passage_analysis.cache_info().currsize == 0
