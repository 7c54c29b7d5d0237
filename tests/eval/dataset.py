"""The answer-quality evaluation set: small businesses, their articles and labelled questions (data/*.toml).

Each question names the article that answers it and the fact(s) a correct answer quotes (any one of them),
or names no article: the knowledge base does not answer it and the bot must say so. `tags` mark
paraphrases, typos and questions in a second language (`lang:xx`). A business's `split` says whether the
ranking was tuned while looking at it (`dev`) or it was written after tuning stopped and measured as is
(`test`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from chat.intents import normalize

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Article:
    title: str
    content: str


@dataclass(frozen=True)
class Question:
    text: str
    article: str | None
    facts: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return self.article is not None


@dataclass(frozen=True)
class Business:
    slug: str
    name: str
    trade: str
    language: str
    split: str
    articles: tuple[Article, ...]
    questions: tuple[Question, ...]


def contains_fact(text: str, fact: str) -> bool:
    """Whether `text` states `fact`: whole normalised words, case-, accent- and punctuation-insensitive."""
    return f" {normalize(fact)} " in f" {normalize(text)} "


def business_load(path: Path) -> Business:
    """One business from its TOML file, checked: every expected article exists and states its facts."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    articles = tuple(Article(title=a["title"], content=a["content"]) for a in data["articles"])
    by_title = {a.title: a for a in articles}
    questions = []
    for q in data["questions"]:
        question = Question(
            text=q["q"], article=q.get("article"), facts=tuple(q.get("fact", ())), tags=tuple(q.get("tags", ()))
        )
        if question.answerable:
            article = by_title.get(question.article or "")
            if article is None or not question.facts:
                raise ValueError(f"{path.name}: {question.text!r} names an unknown article or no fact")
            missing = [f for f in question.facts if not contains_fact(article.content, f)]
            if missing:
                raise ValueError(f"{path.name}: {question.text!r}: {missing} not in {article.title!r}")
        questions.append(question)
    return Business(
        slug=path.stem,
        name=data["name"],
        trade=data["trade"],
        language=data["language"],
        split=data["split"],
        articles=articles,
        questions=tuple(questions),
    )


def businesses_load(split: str | None = None) -> list[Business]:
    """Every business of the set (or of one split), in file-name order."""
    found = [business_load(path) for path in sorted(DATA_DIR.glob("*.toml"))]
    return [b for b in found if split is None or b.split == split]
