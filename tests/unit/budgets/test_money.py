"""budgets.money.format_usd: enough digits that no non-zero amount reads as $0.00."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from budgets.money import format_usd

D = Decimal


@pytest.mark.parametrize("amount,text", [
    (D("0"), "$0.00"),
    (0, "$0.00"),
    (D("5"), "$5.00"),
    (D("1234.5"), "$1234.50"),
    (D("0.01"), "$0.01"),
    (D("0.015"), "$0.02"),
    (D("0.0005"), "$0.0005"),
    (D("0.00032"), "$0.00032"),
    (D("0.000321"), "$0.00032"),
    (D("0.005"), "$0.005"),
    (D("0.00999"), "$0.01"),
    (D("0.000000000001"), "$0.000000000001"),
    (D("0.000500000000"), "$0.0005"),  # a ledger column's 12 decimals
    (0.0005, "$0.0005"),  # a float is read by its shortest repr, not its binary expansion
    ("0.25", "$0.25"),
    (D("-0.0004"), "-$0.0004"),
])
def test_two_decimals_and_two_significant_digits_below_a_cent(amount, text):
    assert format_usd(amount) == text


@pytest.mark.parametrize("amount,text", [
    (D("1.5"), "$1.500000"), (D("0.000123456789"), "$0.000123"),
    (D("0.0000003"), "$0.0000003"), (D("0.00000032"), "$0.00000032"), (D(0), "$0.000000"),
])
def test_more_decimals_on_request(amount, text):
    assert format_usd(amount, decimals=6) == text


@pytest.mark.parametrize("exponent", range(-12, 9))
@pytest.mark.parametrize("digits", ["1", "4", "5", "9", "99", "123", "5005"])
def test_no_non_zero_amount_reads_as_zero(exponent, digits):
    amount = D(digits).scaleb(exponent)
    for decimals in (2, 4, 6):
        text = format_usd(amount, decimals=decimals)
        assert D(text.lstrip("$")) != 0, (amount, text)
        assert len(text.partition(".")[2]) >= decimals


def test_not_an_amount_is_an_error():
    for bad in ("lots", D("NaN"), float("inf")):
        with pytest.raises(ValueError):
            format_usd(bad)


def test_the_template_filter():
    template = Template("{% load money %}{{ a|usd }} {{ b|usd:6 }} [{{ c|usd }}]")
    assert template.render(Context({"a": 0.0005, "b": D("0.00032"), "c": None})) == \
        "$0.0005 $0.000320 []"
