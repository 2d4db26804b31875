"""POST /v1/feedback — a client's verdict (score or thumbs) on an answer, by its request id."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from llmops.api.base import AsyncAPIView
from llmops.db import run_db
from llmops.models import FeedbackSource
from llmops.observability.feedback import (
    cache_feedback_forward,
    response_feedback_create,
    usage_record_for_team,
    verdict_from,
)


def _record_feedback(*, team_id: int, data: dict):
    record = usage_record_for_team(request_id=data["request_id"], team_id=team_id)
    verdict = verdict_from(score=data.get("score"), thumbs=data.get("thumbs"))
    return response_feedback_create(
        usage_record=record, source=FeedbackSource.USER, verdict=verdict,
        task_type=data.get("task_type", ""), comment=data.get("comment", ""),
    )


class FeedbackCreateApi(AsyncAPIView):
    """Rate one answer of your team's: 0-10 and/or thumbs up/down. One rating per answer."""

    class InputSerializer(serializers.Serializer):
        request_id = serializers.CharField(max_length=64,
                                           help_text="The answer's X-Request-ID.")
        score = serializers.FloatField(required=False, min_value=0, max_value=10)
        thumbs = serializers.ChoiceField(choices=["up", "down"], required=False)
        task_type = serializers.CharField(required=False, allow_blank=True, max_length=32,
                                          help_text="code, math, summarization, ... (else "
                                                    "'general').")
        comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)

        class Meta:
            ref_name = "FeedbackCreateInput"

        def validate(self, attrs: dict) -> dict:
            if attrs.get("score") is None and attrs.get("thumbs") is None:
                raise serializers.ValidationError("Give a score (0-10) or thumbs (up/down).")
            return attrs

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        object = serializers.CharField()
        request_id = serializers.CharField()
        score = serializers.FloatField()
        correct = serializers.BooleanField(allow_null=True)
        task_type = serializers.CharField()
        cache_updated = serializers.BooleanField()

        class Meta:
            ref_name = "Feedback"

    @extend_schema(operation_id="feedback_create", request=InputSerializer,
                   responses={201: OutputSerializer,
                              **{code: OpenApiResponse(description="Error object")
                                 for code in (400, 401, 404, 409)}})
    async def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        feedback = await run_db(_record_feedback, team_id=request.auth.team_id, data=data)
        cache_updated = await cache_feedback_forward(team_id=request.auth.team_id,
                                                     request_id=data["request_id"],
                                                     correct=feedback.correct)
        body = self.OutputSerializer({
            "id": feedback.pk, "object": "feedback", "request_id": data["request_id"],
            "score": feedback.score, "correct": feedback.correct,
            "task_type": feedback.task_type, "cache_updated": cache_updated,
        }).data
        return Response(body, status=status.HTTP_201_CREATED)
