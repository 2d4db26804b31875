"""Parsing the judge's reply and turning scores and thumbs into verdicts."""

import pytest

from llmops.observability.feedback import task_type_normalize, verdict_from
from llmops.observability.judge import judge_messages, judgement_parse


class TestJudgementParse:
    def test_reads_json_wrapped_in_prose_or_fences(self):
        reply = 'Sure.\n```json\n{"score": 7.5, "task_type": "code", ' \
                '"unsupported_claims": ["Python 4 exists"], "rationale": "ok"}\n```'
        judgement = judgement_parse(reply)
        assert judgement.score == 7.5 and judgement.task_type == "code"
        assert judgement.unsupported_claims == ["Python 4 exists"]

    @pytest.mark.parametrize("reply", ["no json here", '{"score": 11}', '{"verdict": 3}'])
    def test_rejects_replies_without_a_valid_score(self, reply):
        with pytest.raises(ValueError):
            judgement_parse(reply)

    def test_the_judge_sees_the_conversation_and_the_answer(self):
        messages = judge_messages(messages=[{"role": "user", "content": "2+2?"}], answer="4")
        assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
        assert "user: 2+2?" in messages[1]["content"] and "<answer>\n4\n" in messages[1]["content"]


class TestVerdicts:
    def test_thumbs_decide_correctness(self):
        assert verdict_from(thumbs="up").score == 10 and verdict_from(thumbs="up").correct
        assert verdict_from(thumbs="down", score=4).correct is False

    def test_scores_are_right_wrong_or_neutral(self):
        assert verdict_from(score=8).correct is True
        assert verdict_from(score=2).correct is False
        assert verdict_from(score=5).correct is None and verdict_from(score=5).label == "neutral"

    def test_unknown_task_types_become_general(self):
        assert task_type_normalize("Code") == "code"
        assert task_type_normalize("user-42-special") == "general"
