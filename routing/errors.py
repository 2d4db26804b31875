"""Errors routing raises about a request itself (the gateway maps them to a 400)."""


class UnboundedInput(ValueError):
    """A request part whose billed tokens cannot be bounded before the call.

    `param` names the offending field as OpenAI's error objects do, e.g.
    `messages[0].content[1].file.file_id`.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
