"""Importing knowledge from files: documents and question/answer CSVs, all or nothing."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from billing.models import Plan
from chat.knowledge_import import ImportFile, knowledge_import
from chat.models import KnowledgeArticle
from chat.retrieval import passages_search
from netia.errors import PlanLimitExceeded, ValidationFailed

FAQ = 'question,answer\nDo you deliver?,We deliver within 5 km.\n\n"Gluten free, really?","Yes, on Fridays."\n'


def test_documents_and_question_answer_pairs_become_articles(tenant):
    files = [
        ImportFile("opening-hours.txt", b"We open at 7:00 every weekday."),
        ImportFile("returns.md", b"# Returns policy\n\nReturns within **14 days**.\n"),
        ImportFile("faq.csv", ("\ufeff" + FAQ).encode()),
    ]
    with tenant_context(tenant):
        created = knowledge_import(tenant=tenant, files=files)
        found = passages_search(query="gluten", language="en", limit=1)

    assert [(a.title, a.content) for a in created] == [
        ("Opening hours", "We open at 7:00 every weekday."),
        ("Returns policy", "Returns within **14 days**."),
        ("Do you deliver?", "We deliver within 5 km."),
        ("Gluten free, really?", "Yes, on Fridays."),
    ]
    assert [p.title for p in found] == ["Gluten free, really?"]


def test_semicolon_csvs_with_extra_columns_are_read(tenant):
    data = b"id;Answer;Question\n1;Ten euros.;How much is a cake?\n"
    with tenant_context(tenant):
        (article,) = knowledge_import(tenant=tenant, files=[ImportFile("faq.csv", data)])

    assert (article.title, article.content) == ("How much is a cake?", "Ten euros.")


def test_any_error_imports_nothing_and_names_each_problem(tenant):
    files = [
        ImportFile("good.txt", b"Fine content."),
        ImportFile("faq.csv", b"question,answer\nOk?,Yes.\n,No question here\nNo answer?,\n"),
        ImportFile("notes.pdf", b"%PDF"),
        ImportFile("latin1.txt", "Caf\xe9".encode("latin-1")),
        ImportFile("empty.md", b"# Only a title\n"),
        ImportFile("headers.csv", b"q,a\nx,y\n"),
    ]
    with tenant_context(tenant):
        with pytest.raises(ValidationFailed) as error:
            knowledge_import(tenant=tenant, files=files)
        assert KnowledgeArticle.objects.count() == 0

    assert error.value.extra["errors"] == [
        {"file": "faq.csv", "row": 3, "message": "The question is empty."},
        {"file": "faq.csv", "row": 4, "message": "The answer is empty."},
        {"file": "notes.pdf", "row": None, "message": "Use .md, .txt or .csv files."},
        {"file": "latin1.txt", "row": None, "message": "The file is not UTF-8 text. Save it as UTF-8 and try again."},
        {"file": "empty.md", "row": None, "message": "The document is empty."},
        {"file": "headers.csv", "row": 1, "message": 'The first row must name the columns "question" and "answer".'},
    ]


def test_an_import_beyond_the_plan_imports_nothing(tenant):
    Plan.objects.filter(is_default=True).update(knowledge_articles_max=2)
    rows = "question,answer\n" + "".join(f"Q{i}?,A{i}.\n" for i in range(3))
    with tenant_context(tenant):
        with pytest.raises(PlanLimitExceeded):
            knowledge_import(tenant=tenant, files=[ImportFile("faq.csv", rows.encode())])
        assert KnowledgeArticle.objects.count() == 0
