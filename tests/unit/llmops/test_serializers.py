"""The chat request serializer builds its fields once per class; every instance still keeps its
own errors and data."""

from llmops.api.serializers import ChatCompletionInputSerializer


def _request(**overrides) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **overrides}


def test_fields_are_built_once_and_shared():
    first, second = ChatCompletionInputSerializer(data={}), ChatCompletionInputSerializer(data={})
    assert first.fields is second.fields
    assert first.fields["messages"].child is second.fields["messages"].child


def test_each_instance_keeps_its_own_result():
    good = ChatCompletionInputSerializer(data=_request(temperature=0.5))
    bad = ChatCompletionInputSerializer(data=_request(temperature=5, messages=[{"role": "user"}]))
    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert good.validated_data["temperature"] == 0.5 and not good.errors
    assert set(bad.errors) == {"temperature", "messages"}
    assert "needs content" in str(bad.errors["messages"][0])
    # Validating again with other data leaves the first results alone.
    other = ChatCompletionInputSerializer(data=_request(temperature=1.5))
    assert other.is_valid()
    assert good.validated_data["temperature"] == 0.5
    assert other.validated_data["temperature"] == 1.5
