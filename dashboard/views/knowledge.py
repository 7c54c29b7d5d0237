"""Knowledge: articles (create, edit, delete), file import, and "test a question" against retrieval."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from chat.knowledge import knowledge_article_create, knowledge_article_delete, knowledge_article_update
from chat.knowledge_import import ImportFile, knowledge_import
from chat.models import KnowledgeArticle
from chat.selectors import knowledge_article_list, knowledge_passages_test
from dashboard.forms import ArticleForm, ImportForm, KnowledgeTestForm
from dashboard.portal import TEAM, PortalView
from netia.errors import ApplicationError, ValidationFailed


class KnowledgeView(PortalView):
    roles = TEAM

    def context(self, **extra: Any) -> dict[str, Any]:
        return {
            "articles": knowledge_article_list().prefetch_related("passages"),
            "import_form": ImportForm(),
            "test_form": KnowledgeTestForm(),
            **extra,
        }

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page("dashboard/knowledge/list.html", self.context())


class KnowledgeImportView(KnowledgeView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.page("dashboard/knowledge/list.html", self.context(import_form=form), status=400)
        files = [ImportFile(name=f.name or "file", data=f.read()) for f in form.cleaned_data["documents"]]
        try:
            created = knowledge_import(tenant=self.tenant, files=files)
        except ValidationFailed as error:
            context = self.context(
                import_form=form, import_error=error.message, import_problems=error.extra.get("errors")
            )
            return self.page("dashboard/knowledge/list.html", context, status=400)
        messages.success(request, f"Imported {len(created)} article{'s' if len(created) != 1 else ''}.")
        return redirect("dashboard:knowledge")


class KnowledgeTestView(KnowledgeView):
    """The passages retrieval finds for a question (an htmx partial; a full page without JavaScript)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = KnowledgeTestForm(request.POST)
        passages = knowledge_passages_test(question=form.cleaned_data["question"]) if form.is_valid() else []
        context = {"test_form": form, "passages": passages, "tested": form.is_valid()}
        if self.request.htmx:
            return self.page("dashboard/knowledge/_test_results.html", context)
        return self.page("dashboard/knowledge/list.html", self.context(**context))


class _ArticleView(PortalView):
    roles = TEAM

    def article(self, article_id: int) -> KnowledgeArticle:
        article = knowledge_article_list().filter(pk=article_id).first()
        if article is None:
            raise Http404
        return article

    def save(self, form: ArticleForm, article: KnowledgeArticle | None) -> HttpResponse:
        template = "dashboard/knowledge/form.html"
        if not form.is_valid():
            return self.page(template, {"form": form, "article": article}, status=400)
        try:
            if article is None:
                article = knowledge_article_create(tenant=self.tenant, **form.cleaned_data)
            else:
                article = knowledge_article_update(article=article, **form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
            return self.page(template, {"form": form, "article": article}, status=error.status_code)
        messages.success(self.request, f"“{article.title}” saved. The bot uses it from now on.")
        return redirect("dashboard:knowledge")


class ArticleCreateView(_ArticleView):
    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page("dashboard/knowledge/form.html", {"form": ArticleForm(), "article": None})

    def post(self, request: HttpRequest) -> HttpResponse:
        return self.save(ArticleForm(request.POST), None)


class ArticleEditView(_ArticleView):
    def get(self, request: HttpRequest, article_id: int) -> HttpResponse:
        article = self.article(article_id)
        form = ArticleForm(
            initial={"title": article.title, "content": article.content, "source_url": article.source_url}
        )
        return self.page("dashboard/knowledge/form.html", {"form": form, "article": article})

    def post(self, request: HttpRequest, article_id: int) -> HttpResponse:
        return self.save(ArticleForm(request.POST), self.article(article_id))


class ArticleDeleteView(_ArticleView):
    def post(self, request: HttpRequest, article_id: int) -> HttpResponse:
        article = self.article(article_id)
        knowledge_article_delete(article=article)
        messages.success(request, f"“{article.title}” deleted.")
        return redirect("dashboard:knowledge")
