"""API routes."""

from django.urls import path

from llmops.api.embeddings import EmbeddingCreateApi
from llmops.api.feedback import FeedbackCreateApi
from llmops.api.health import healthz, readyz
from llmops.api.messages.views import MessageCountTokensApi, MessageCreateApi
from llmops.api.responses import ResponseCreateApi, ResponseDetailApi
from llmops.api.views import ChatCompletionCreateApi, ModelListApi

urlpatterns = [
    path("v1/chat/completions", ChatCompletionCreateApi.as_view(), name="chat-completions"),
    path("v1/messages", MessageCreateApi.as_view(), name="messages"),
    path("v1/messages/count_tokens", MessageCountTokensApi.as_view(),
         name="messages-count-tokens"),
    path("v1/models", ModelListApi.as_view(), name="models"),
    path("v1/embeddings", EmbeddingCreateApi.as_view(), name="embeddings"),
    path("v1/responses", ResponseCreateApi.as_view(), name="responses"),
    path("v1/responses/<str:response_id>", ResponseDetailApi.as_view(), name="response-detail"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("v1/feedback", FeedbackCreateApi.as_view(), name="feedback"),
]
