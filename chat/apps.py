from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Conversations and knowledge"

    def ready(self) -> None:
        from chat import tasks  # noqa: F401 - offers the tasks the services queue by name
