"""Public pages (landing, sign-up, sign-in, demo) and the customer portal under /portal/.

Every /portal/ view is a PortalView: `dashboard.middleware.PortalMiddleware` refuses anything else there.
"""

from django.urls import include, path

from dashboard.views import (
    activity,
    api_keys,
    auth,
    billing,
    bot,
    channel,
    conversations,
    demo,
    home,
    knowledge,
    leads,
    overview,
)
from dashboard.views import team as team_views

app_name = "dashboard"

portal = [
    path("", overview.OverviewView.as_view(), name="overview"),
    path("setup", overview.SetupView.as_view(), name="setup"),
    path("switch", overview.SwitchTenantView.as_view(), name="switch"),
    path("conversations", conversations.ConversationListView.as_view(), name="conversations"),
    path("conversations/<uuid:public_id>", conversations.ConversationDetailView.as_view(), name="conversation"),
    path(
        "conversations/<uuid:public_id>/take-over",
        conversations.ConversationTakeOverView.as_view(),
        name="conversation-take-over",
    ),
    path(
        "conversations/<uuid:public_id>/hand-back",
        conversations.ConversationHandBackView.as_view(),
        name="conversation-hand-back",
    ),
    path("conversations/<uuid:public_id>/note", conversations.ConversationNoteView.as_view(), name="conversation-note"),
    path(
        "conversations/<uuid:public_id>/export",
        conversations.ConversationExportView.as_view(),
        name="conversation-export",
    ),
    path("leads", leads.LeadListView.as_view(), name="leads"),
    path("leads/export.csv", leads.LeadExportView.as_view(), name="leads-export"),
    path("leads/<int:lead_id>", leads.LeadDetailView.as_view(), name="lead"),
    path("knowledge", knowledge.KnowledgeView.as_view(), name="knowledge"),
    path("knowledge/new", knowledge.ArticleCreateView.as_view(), name="article-create"),
    path("knowledge/import", knowledge.KnowledgeImportView.as_view(), name="knowledge-import"),
    path("knowledge/test", knowledge.KnowledgeTestView.as_view(), name="knowledge-test"),
    path("knowledge/<int:article_id>", knowledge.ArticleEditView.as_view(), name="article"),
    path("knowledge/<int:article_id>/delete", knowledge.ArticleDeleteView.as_view(), name="article-delete"),
    path("bot", bot.BotView.as_view(), name="bot"),
    path("channel", channel.ChannelView.as_view(), name="channel"),
    path("channel/connect", channel.ChannelConnectView.as_view(), name="channel-connect"),
    path("channel/check", channel.ChannelCheckView.as_view(), name="channel-check"),
    path("channel/webhook-secret", channel.ChannelSecretView.as_view(), name="channel-secret"),
    path("channel/crisp/connect", channel.ChannelCrispConnectView.as_view(), name="channel-crisp-connect"),
    path("channel/crisp/check", channel.ChannelCrispCheckView.as_view(), name="channel-crisp-check"),
    path("billing", billing.BillingView.as_view(), name="billing"),
    path("billing/checkout", billing.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/manage", billing.ManageBillingView.as_view(), name="billing-manage"),
    path("api-keys", api_keys.ApiKeysView.as_view(), name="api-keys"),
    path("api-keys/new", api_keys.ApiKeyCreateView.as_view(), name="api-key-create"),
    path("api-keys/<uuid:key_id>/revoke", api_keys.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
    path("team", team_views.TeamView.as_view(), name="team"),
    path("team/invite", team_views.InviteView.as_view(), name="team-invite"),
    path("team/<int:membership_id>/role", team_views.RoleView.as_view(), name="team-role"),
    path("team/<int:membership_id>/remove", team_views.RemoveView.as_view(), name="team-remove"),
    path("activity", activity.ActivityView.as_view(), name="activity"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("signup", auth.SignupView.as_view(), name="signup"),
    path("login", auth.LoginView.as_view(), name="login"),
    path("login/link", auth.LoginLinkView.as_view(), name="login-link"),
    path("logout", auth.LogoutView.as_view(), name="logout"),
    path("demo/<slug:slug>/", demo.demo, name="demo"),
    path("portal/", include(portal)),
]
