"""Retrieval quality (issue 12): lexemes made in Python, article languages, optional pgvector embeddings,
citations, and `reply_language` "auto" (was "visitor").

The embedding column is added only where pgvector can be created (see chat.embeddings); the migration works
without it. Existing articles are re-indexed with the new analysis (chat.text), using historical models.
"""

from django.db import migrations, models


def reindex_articles(apps, schema_editor):
    from chat.retrieval import split_passages
    from chat.text import language_detect, tsvector_literal

    BotConfiguration = apps.get_model("chat", "BotConfiguration")
    KnowledgeArticle = apps.get_model("chat", "KnowledgeArticle")
    KnowledgePassage = apps.get_model("chat", "KnowledgePassage")
    config = BotConfiguration.objects.filter(pk=1).first()
    default = config.language if config else "en"
    for article in KnowledgeArticle.objects.all():
        article.language = language_detect(f"{article.title}\n{article.content}", default)
        article.save(update_fields=["language"])
        KnowledgePassage.objects.filter(article=article).delete()
        KnowledgePassage.objects.bulk_create(
            KnowledgePassage(
                article=article,
                position=i,
                content=text,
                search_vector=tsvector_literal(title=article.title, body=text, language=article.language),
            )
            for i, text in enumerate(split_passages(article.content))
        )


def add_embedding_column(apps, schema_editor):
    from chat.embeddings import vector_column_ensure

    with schema_editor.connection.cursor() as cursor:
        vector_column_ensure(cursor)


def reply_language_auto(apps, schema_editor):
    apps.get_model("chat", "BotConfiguration").objects.filter(reply_language="visitor").update(reply_language="auto")


def reply_language_visitor(apps, schema_editor):
    apps.get_model("chat", "BotConfiguration").objects.filter(reply_language="auto").update(reply_language="visitor")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_conversation_bot_since"),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgearticle",
            name="language",
            field=models.CharField(blank=True, help_text="Detected when indexed; picks the stemmer.", max_length=16),
        ),
        migrations.AddField(
            model_name="knowledgepassage",
            name="embedding_model",
            field=models.CharField(blank=True, help_text="The model of its embedding, if any.", max_length=100),
        ),
        migrations.AddField(
            model_name="botconfiguration",
            name="cite_sources",
            field=models.BooleanField(
                default=False,
                help_text="End replies sent through a channel (Papercups) with the titles of the articles used.",
            ),
        ),
        migrations.AlterField(
            model_name="botconfiguration",
            name="reply_language",
            field=models.CharField(
                choices=[("auto", "Answer in the visitor's language"), ("fixed", "Always answer in the configured language")],
                default="auto",
                max_length=16,
            ),
        ),
        migrations.RunPython(reply_language_auto, reply_language_visitor),
        migrations.RunPython(reindex_articles, migrations.RunPython.noop),
        migrations.RunPython(add_embedding_column, migrations.RunPython.noop),
    ]
