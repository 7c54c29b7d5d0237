"""Import knowledge from files: Markdown or text documents (one article each) and CSVs of question/answer pairs.

All or nothing: every file and row is checked first; any error imports nothing and reports each problem with
its file and row, so the business can fix the file and upload it again.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import PurePath

from django.db import transaction

from billing.selectors import plan_quota_check
from chat.knowledge import knowledge_article_create
from chat.models import KnowledgeArticle
from netia.errors import ValidationFailed
from tenants.models import Tenant

MAX_FILE_BYTES = 1024 * 1024
MAX_ROWS = 2000
MAX_TITLE = 200
MAX_CONTENT = 100_000
DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class ImportFile:
    name: str
    data: bytes


@dataclass(frozen=True)
class ImportProblem:
    """One problem: in `file`, at `row` (CSV line number, header = 1) when it concerns a row."""

    file: str
    message: str
    row: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "row": self.row, "message": self.message}


@dataclass(frozen=True)
class _Article:
    title: str
    content: str


def _title_from_name(name: str) -> str:
    stem = PurePath(name).stem.replace("_", " ").replace("-", " ").strip()
    return (stem[:1].upper() + stem[1:])[:MAX_TITLE] or "Untitled"


def _decode(file: ImportFile, errors: list[ImportProblem]) -> str | None:
    if len(file.data) > MAX_FILE_BYTES:
        errors.append(ImportProblem(file.name, f"The file is larger than {MAX_FILE_BYTES // 1024} KB."))
        return None
    try:
        return file.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors.append(ImportProblem(file.name, "The file is not UTF-8 text. Save it as UTF-8 and try again."))
        return None


def _document(file: ImportFile, text: str, errors: list[ImportProblem]) -> list[_Article]:
    """A Markdown or text document: its first heading (else its file name) is the title, the rest the content."""
    lines = text.strip().splitlines()
    title = _title_from_name(file.name)
    heading = _HEADING.match(lines[0]) if lines and file.name.lower().endswith((".md", ".markdown")) else None
    if heading:
        title, lines = heading.group(1)[:MAX_TITLE], lines[1:]
    content = "\n".join(lines).strip()
    if not content:
        errors.append(ImportProblem(file.name, "The document is empty."))
        return []
    if len(content) > MAX_CONTENT:
        errors.append(ImportProblem(file.name, f"The document is longer than {MAX_CONTENT} characters."))
        return []
    return [_Article(title=title, content=content)]


def _question_answers(file: ImportFile, text: str, errors: list[ImportProblem]) -> list[_Article]:
    """A CSV with a header naming `question` and `answer` columns (any order, other columns ignored)."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = [cell.strip().lower() for cell in next(rows, [])]
    if "question" not in header or "answer" not in header:
        errors.append(ImportProblem(file.name, 'The first row must name the columns "question" and "answer".', 1))
        return []
    q_col, a_col = header.index("question"), header.index("answer")
    articles: list[_Article] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(articles) >= MAX_ROWS:
            errors.append(ImportProblem(file.name, f"More than {MAX_ROWS} rows: split the file.", line))
            break
        question = row[q_col].strip() if q_col < len(row) else ""
        answer = row[a_col].strip() if a_col < len(row) else ""
        if not question or not answer:
            missing = "question" if not question else "answer"
            errors.append(ImportProblem(file.name, f"The {missing} is empty.", line))
        elif len(question) > MAX_TITLE:
            errors.append(ImportProblem(file.name, f"The question is longer than {MAX_TITLE} characters.", line))
        else:
            articles.append(_Article(title=question, content=answer))
    if not articles and not errors:
        errors.append(ImportProblem(file.name, "The file has no question/answer rows."))
    return articles


def knowledge_import(*, tenant: Tenant, files: list[ImportFile]) -> list[KnowledgeArticle]:
    """Check every file, then create all their articles in one transaction; raises ValidationFailed with
    `extra["errors"]` (file, row, message) and creates nothing if anything is wrong or over the plan."""
    if not files:
        raise ValidationFailed("Choose at least one file.", extra={"errors": []})
    errors: list[ImportProblem] = []
    articles: list[_Article] = []
    for file in files:
        name = file.name.lower()
        if not name.endswith((*DOCUMENT_SUFFIXES, ".csv")):
            errors.append(ImportProblem(file.name, "Use .md, .txt or .csv files."))
            continue
        text = _decode(file, errors)
        if text is None:
            continue
        parse = _question_answers if name.endswith(".csv") else _document
        articles.extend(parse(file, text, errors))
    if errors:
        raise ValidationFailed(
            "Nothing was imported: fix these problems and upload again.",
            extra={"errors": [error.as_dict() for error in errors]},
        )
    with transaction.atomic():
        used = KnowledgeArticle.objects.count()
        plan_quota_check(tenant=tenant, resource="knowledge_articles", used=used + len(articles) - 1)
        return [
            knowledge_article_create(tenant=tenant, title=article.title, content=article.content)
            for article in articles
        ]
