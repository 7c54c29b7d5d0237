from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Conversations and knowledge"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from chat import tasks  # noqa: F401 - offers the tasks the services queue by name
        from chat.api.public import cors_allowed

        check_request_enabled.connect(cors_allowed, dispatch_uid="chat_api_cors")
        from chat.models import BotConfiguration
        from chat.selectors import bot_configuration_cache
        from netia.versioned_cache import bump_on_write

        bump_on_write(BotConfiguration, lambda: [bot_configuration_cache()])
