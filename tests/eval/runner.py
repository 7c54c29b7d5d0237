"""Run the evaluation set through the public chat API: offline responder, then the LLM path.

Each question is a new chat session, asked with `POST /api/v1/chat` (django's test client: the real view,
middleware, authentication and engine) in a tenant holding only that business's articles; the regression
test asks the engine directly (`via="engine"`: the same retrieval, threshold and answer, without storing a
conversation), which is several times faster. Figures:

- recall@1, recall@4: the expected article is the first / among the first four retrieved (the ranked list,
  before the relevance threshold);
- offline fact: the offline reply states an expected fact;
- honest: an unanswerable question is answered without citing any article (the bot says it does not know);
- LLM passage: the prompt sent to the (fake) OpenAI server carried a passage of the expected article;
- LLM honest: the prompt of an unanswerable question carried no passage.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from tests.eval.dataset import Business, Question, contains_fact

CHAT_URL = "/api/v1/chat"
_PROMPT_PASSAGE = re.compile(r"^\[\d+\] (.+?): ", re.MULTILINE)
# Neither rate limits nor the answer cache may change what is measured.
_EVAL_SETTINGS = {
    "CHAT_RATE_PER_IP": "1000000/m",
    "CHAT_RATE_PER_TOKEN": "1000000/m",
    "CHAT_RESPONSE_CACHE_SECONDS": 0,
}


@dataclass
class Outcome:
    question: Question
    retrieved: list[str]
    reply: str = ""
    cited: list[str] = field(default_factory=list)
    prompt_titles: list[str] | None = None

    def hit(self, k: int) -> bool:
        return self.question.article in self.retrieved[:k]

    @property
    def fact(self) -> bool:
        return any(contains_fact(self.reply, f) for f in self.question.facts)

    @property
    def honest(self) -> bool:
        return not self.cited


@dataclass
class Scores:
    """Figures over a set of outcomes; None where the set has no question of that kind."""

    answerable: int
    unanswerable: int
    recall_at_1: float | None
    recall_at_4: float | None
    offline_fact: float | None
    honest: float | None
    llm_passage: float | None
    llm_honest: float | None

    @classmethod
    def of(cls, offline: list[Outcome], llm: list[Outcome]) -> Scores:
        def rate(outcomes: list[Outcome], ok: Any) -> float | None:
            return round(sum(1 for o in outcomes if ok(o)) / len(outcomes), 3) if outcomes else None

        answerable = [o for o in offline if o.question.answerable]
        unanswerable = [o for o in offline if not o.question.answerable]
        llm_answerable = [o for o in llm if o.question.answerable]
        llm_unanswerable = [o for o in llm if not o.question.answerable]
        return cls(
            answerable=len(answerable),
            unanswerable=len(unanswerable),
            recall_at_1=rate(answerable, lambda o: o.hit(1)),
            recall_at_4=rate(answerable, lambda o: o.hit(4)),
            offline_fact=rate(answerable, lambda o: o.fact),
            honest=rate(unanswerable, lambda o: o.honest),
            llm_passage=rate(llm_answerable, lambda o: o.question.article in (o.prompt_titles or [])),
            llm_honest=rate(llm_unanswerable, lambda o: not o.prompt_titles),
        )


@dataclass
class BusinessResult:
    business: Business
    offline: list[Outcome]
    llm: list[Outcome]

    @property
    def scores(self) -> Scores:
        return Scores.of(self.offline, self.llm)


def tenant_prepare(tenant: Any) -> None:
    """Lift the plan's limits (AI replies, articles) for the tenant, so the evaluation measures answers only."""
    from billing.models import BillingAccount, Plan

    plan, _ = Plan.objects.get_or_create(code="eval-unlimited", defaults={"name": "Evaluation", "is_active": False})
    BillingAccount.objects.filter(tenant=tenant).update(plan=plan)


def knowledge_load(tenant: Any, business: Business) -> None:
    """Replace the tenant's knowledge base and bot language with the business's."""
    from chat.embeddings import passages_embed
    from chat.models import KnowledgeArticle
    from chat.services import bot_configuration_update, knowledge_article_create

    with tenant_context(tenant):
        KnowledgeArticle.objects.all().delete()
        bot_configuration_update(tenant=tenant, language=business.language)
        for article in business.articles:
            knowledge_article_create(tenant=tenant, title=article.title, content=article.content)
        # With embeddings on, the task queued after each commit embeds the passages; embed here too, so the
        # figures never depend on when a test runs its on-commit callbacks (a no-op when done already).
        passages_embed()


def ranked_titles(tenant: Any, question: str, language: str, k: int = 4) -> list[str]:
    """The articles of the first `k` retrieved passages, best first (the retriever's ranked list)."""
    from chat.retrieval import passages_search

    with tenant_context(tenant):
        return [p.title for p in passages_search(query=question, language=language, limit=k)]


def _ask_engine(tenant: Any, question: str) -> dict[str, Any]:
    from chat import engine
    from chat.selectors import bot_configuration_get

    with tenant_context(tenant):
        config = bot_configuration_get()
        intent = engine.classifier(config).classify(question)
        answer = engine.compose_answer(
            config=config,
            business_name=tenant.name,
            question=question,
            intent=intent,
            history=[],
            model=settings.OPENAI_MODEL,
        )
    return {"reply": answer.text, "sources": answer.sources}


def _ask(client: Client, tenant: Any, question: str) -> dict[str, Any]:
    response = client.post(
        CHAT_URL,
        {"session_id": f"eval-{uuid.uuid4()}", "message": question},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.chat_token}",
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@contextmanager
def embeddings_settings(llm: Any, embeddings: str | None) -> Iterator[None]:
    """With `embeddings` ("minilm"), the fake OpenAI server embeds with MiniLM and retrieval uses it.

    The base URL alone turns embeddings on (a self-hosted embeddings server needs no key), so the offline
    responder (no OPENAI_API_KEY) measures the meaning-based path too. Needs pgvector.
    """
    if not embeddings:
        yield
        return
    from django.db import connection

    from chat.embeddings import pgvector_available
    from tests.fakes import minilm

    if not minilm.available():
        raise RuntimeError(f"the MiniLM files are not in {minilm.MODEL_DIR}: run `make minilm`")
    with connection.cursor() as cursor:
        if not pgvector_available(cursor):
            raise RuntimeError("this PostgreSQL server has no pgvector: run with DATABASE_URL unset (embedded)")
    llm.set_embedding(batch=minilm.minilm_embeddings)
    with override_settings(
        OPENAI_BASE_URL=f"{llm.url}/v1", OPENAI_MAX_RETRIES=0, OPENAI_EMBEDDING_MODEL=minilm.MODEL_NAME
    ):
        yield


@contextmanager
def _llm_settings(llm: Any) -> Iterator[None]:
    with override_settings(OPENAI_API_KEY="sk-eval", OPENAI_BASE_URL=f"{llm.url}/v1", OPENAI_MAX_RETRIES=0):
        yield


def business_evaluate(tenant: Any, business: Business, *, llm: Any = None, via: str = "api") -> BusinessResult:
    """Load the business into `tenant`, ask every question offline and, given a FakeOpenAI, through the LLM.

    `via` is "api" (POST /api/v1/chat) or "engine" (`chat.engine.compose_answer`).
    """
    knowledge_load(tenant, business)
    client = Client()

    def ask(question: str) -> dict[str, Any]:
        return _ask(client, tenant, question) if via == "api" else _ask_engine(tenant, question)

    offline: list[Outcome] = []
    llm_outcomes: list[Outcome] = []
    with override_settings(**_EVAL_SETTINGS, OPENAI_API_KEY=""):
        for question in business.questions:
            body = ask(question.text)
            offline.append(
                Outcome(
                    question=question,
                    retrieved=ranked_titles(tenant, question.text, business.language),
                    reply=body["reply"] or "",
                    cited=[s["title"] for s in body["sources"]],
                )
            )
        if llm is not None:
            with _llm_settings(llm):
                for question, done in zip(business.questions, offline, strict=True):
                    llm.clear_requests()
                    body = ask(question.text)
                    prompts = llm.prompts()
                    system = prompts[-1][0]["content"] if prompts else ""
                    llm_outcomes.append(
                        Outcome(
                            question=question,
                            retrieved=done.retrieved,
                            reply=body["reply"] or "",
                            cited=[s["title"] for s in body["sources"]],
                            prompt_titles=_PROMPT_PASSAGE.findall(system),
                        )
                    )
    return BusinessResult(business=business, offline=offline, llm=llm_outcomes)


def overall(results: list[BusinessResult]) -> Scores:
    return Scores.of([o for r in results for o in r.offline], [o for r in results for o in r.llm])


def report(results: list[BusinessResult], *, failures: bool = False) -> str:
    """The figures as a table, per business and overall (and per split when both are present)."""
    columns = ("recall_at_1", "recall_at_4", "offline_fact", "honest", "llm_passage", "llm_honest")
    header = f"{'business':<34}{'split':<6}{'ans':>5}{'unans':>6}" + "".join(f"{c:>14}" for c in columns)
    lines = [header, "-" * len(header)]

    def row(name: str, split: str, scores: Scores) -> str:
        cells = "".join(f"{'-' if v is None else f'{v:.3f}':>14}" for v in (getattr(scores, c) for c in columns))
        return f"{name[:33]:<34}{split:<6}{scores.answerable:>5}{scores.unanswerable:>6}{cells}"

    for result in results:
        lines.append(row(result.business.name, result.business.split, result.scores))
    splits = sorted({r.business.split for r in results})
    if len(splits) > 1:
        for split in splits:
            lines.append(row(f"all {split}", split, overall([r for r in results if r.business.split == split])))
    lines.append(row("overall", "", overall(results)))
    lines.append("")
    kinds: dict[str, list[Outcome]] = {}
    for result in results:
        for o in result.offline:
            kind = next((t.split(":")[0] for t in o.question.tags), "direct")
            kinds.setdefault(f"{kind} {'answerable' if o.question.answerable else 'unanswerable'}", []).append(o)
    for kind, outcomes in sorted(kinds.items()):
        scores = Scores.of(outcomes, [])
        lines.append(row(f"by kind: {kind}", "", scores))
    if failures:
        lines.append("")
        for result in results:
            for o in result.offline:
                q = o.question
                if (q.answerable and not (o.hit(1) and o.fact)) or (not q.answerable and not o.honest):
                    lines.append(
                        f"[{result.business.slug}] {q.text!r} tags={list(q.tags)} expected={q.article!r} "
                        f"retrieved={o.retrieved} reply={o.reply[:140]!r}"
                    )
    return "\n".join(lines)
