"""What budgets refuse, as plain exceptions: the API renders them (llmops.errors), so budgets
needs nothing of HTTP or DRF."""


class BudgetError(Exception):
    """A request budgets will not take: a message for the caller, a machine-readable `code`,
    and `extra` fields for the error body."""

    default_code = "budget_error"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


class BudgetExceeded(BudgetError):
    """A budget that applies has too little left for the request's upper-bound cost; `extra`
    names the budget, its period, limit, what remains and what was asked."""

    default_code = "budget_exceeded"


class DuplicateRequestId(BudgetError):
    """The caller's team has already used (or has in flight) this request id."""

    default_code = "duplicate_request_id"
