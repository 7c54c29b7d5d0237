from django.urls import path

from chat.api import ChatMessageCreateApi

urlpatterns = [
    path("chat", ChatMessageCreateApi.as_view(), name="chat-message-create"),
]
