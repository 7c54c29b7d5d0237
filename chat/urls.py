from django.urls import path

from chat.api import customer
from chat.api.public import ChatMessageCreateApi

urlpatterns = [
    path("chat", ChatMessageCreateApi.as_view(), name="chat-message-create"),
    path("customer/knowledge", customer.KnowledgeArticlesApi.as_view(), name="customer-knowledge"),
    path("customer/knowledge/<int:article_id>", customer.KnowledgeArticleApi.as_view(), name="customer-article"),
    path("customer/bot", customer.BotConfigurationApi.as_view(), name="customer-bot"),
    path("customer/conversations", customer.ConversationsApi.as_view(), name="customer-conversations"),
    path(
        "customer/conversations/<uuid:conversation_id>",
        customer.ConversationApi.as_view(),
        name="customer-conversation",
    ),
    path("customer/leads", customer.LeadsApi.as_view(), name="customer-leads"),
    path("customer/leads/<int:lead_id>", customer.LeadApi.as_view(), name="customer-lead"),
    path("customer/analytics", customer.AnalyticsApi.as_view(), name="customer-analytics"),
]
