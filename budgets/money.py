"""Dollar amounts: the ledger's precision, and for people enough digits that no non-zero amount
ever reads as $0.00."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
USD = Decimal("0.000000000001")  # ledger precision, as routing.pricing.USD


def ledger_usd(amount) -> Decimal:
    """Return `amount` at the ledger's precision (12 decimal places)."""
    return Decimal(amount).quantize(USD)


def format_usd(amount, *, decimals: int = 2) -> str:
    """Return `amount` (USD: Decimal, int, float or numeric string) as "$1.50", "-$2.00".

    At least `decimals` decimal places; an amount too small to show in them keeps two
    significant digits instead ($0.0005, $0.00032 at 2 decimals), so a non-zero amount is
    never rounded to zero. Not for machines: JSON and CSV carry the exact value.
    """
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {amount!r}")
    sign, value = ("-" if value < 0 else ""), abs(value)
    step = Decimal(1).scaleb(-decimals)
    if value >= step or not value:
        text = f"{value.quantize(step, rounding=ROUND_HALF_UP):f}"
    else:
        # Two significant digits, without trailing zeros past the minimum decimals.
        text = f"{value.quantize(Decimal(1).scaleb(value.adjusted() - 1), ROUND_HALF_UP):f}"
        whole, _, fraction = text.partition(".")
        text = f"{whole}.{fraction.rstrip('0').ljust(decimals, '0')}"
    return f"{sign}${text}"
