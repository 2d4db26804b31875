"""End to end: the official openai SDK's Responses API against a live gateway."""

from budgets.models import UsageRecord


def test_smoke(openai_client):
    response = openai_client.responses.create(model="simulated-standard", input="Hello there",
                                              max_output_tokens=32)
    print(response)
    assert response.output_text
    with openai_client.responses.stream(model="simulated-standard", input="Tell me more") as s:
        for event in s:
            print(event.type)
        final = s.get_final_response()
    print(final)
    print(list(UsageRecord.objects.values("endpoint", "stream")))
