"""The ledger changelist at any size: pages never counted, a default window of recent days, and
filters and the date hierarchy whose choices come from the roll-ups, never from a DISTINCT or
COUNT over the raw rows.

Django's changelist counts the filtered queryset on every page (`paginator.count`, even with
`show_full_result_count = False`), lists `RelatedOnlyFieldListFilter` and
`AllValuesFieldListFilter` choices with a DISTINCT over the whole table, and builds its date
hierarchy from another DISTINCT: each a full scan of a ledger of millions of rows.
"""

from datetime import timedelta
from functools import cached_property

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Page, Paginator
from django.db.models import Max, Min, Sum
from django.utils import timezone

from budgets.models import RollupGrain, UsageRollup
from budgets.rollups import day_start

DATE_FIELD = "created_at"


class UncountedPaginator(Paginator):
    """Pages that are never counted: the requested page is read with one row more than it
    shows, which says whether another page follows. `count` is the rows up to the end of this
    page (plus one when more follow), so Django's changelist sees "one more page" at most."""

    def __init__(self, object_list, per_page, *, page_number: int = 1, **kwargs) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = max(1, page_number)

    @cached_property
    def _rows(self) -> list:
        offset = (self.page_number - 1) * self.per_page
        return list(self.object_list[offset:offset + self.per_page + 1])

    @cached_property
    def count(self) -> int:
        return (self.page_number - 1) * self.per_page + len(self._rows)

    @property
    def has_more(self) -> bool:
        return len(self._rows) > self.per_page

    def page(self, number) -> Page:
        number = self.validate_number(number)
        if number != self.page_number:
            return super().page(number)
        return self._get_page(self._rows[:self.per_page], number, self)


def default_window_days() -> int:
    return settings.LEDGER_ADMIN_DEFAULT_DAYS


class LedgerChangeList(ChangeList):
    """The changelist, bounded to the last LEDGER_ADMIN_DEFAULT_DAYS days unless a date filter,
    the date hierarchy or a search (by request id, an indexed lookup) asks otherwise."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        self.bounded_since = None
        chose_dates = any(name.startswith(DATE_FIELD) for name in self.params)
        if not chose_dates and not self.query:
            self.bounded_since = (day_start(timezone.now())
                                  - timedelta(days=default_window_days() - 1))
            queryset = queryset.filter(**{f"{DATE_FIELD}__gte": self.bounded_since})
        return queryset

    def get_results(self, request):
        super().get_results(request)
        if not self.multi_page:
            # One page in all: the paginator has read it already (Django would read it again
            # without a limit).
            self.result_list = self.paginator.page(1).object_list


def _recent_rollups():
    """The day roll-ups of today and yesterday: what filter choices are drawn from (a busy
    ledger's week is hundreds of thousands of roll-up rows; two days are enough to offer the
    busiest targets)."""
    since = day_start(timezone.now()) - timedelta(days=1)
    return UsageRollup.objects.filter(grain=RollupGrain.DAY, start__gte=since)


FILTER_CHOICES = 30  # the busiest targets of two days; any other one is a URL parameter away


class RollupRelatedFilter(admin.RelatedFieldListFilter):
    """A team or key filter offering the FILTER_CHOICES busiest of the recent days (from the
    roll-ups) and the one chosen, not every row of the related table or a DISTINCT over the
    ledger."""

    def field_choices(self, field, request, model_admin):
        column = field.attname
        busiest = list(_recent_rollups().exclude(**{column: None}).values(column)
                       .annotate(n=Sum("request_count")).order_by("-n")
                       .values_list(column, flat=True)[:FILTER_CHOICES])
        if self.lookup_val:
            busiest.extend(v for v in self.lookup_val if v)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, ordering=ordering,
                                 limit_choices_to={"pk__in": busiest})


class RollupValuesFilter(admin.AllValuesFieldListFilter):
    """A model filter offering the values the recent days' roll-ups hold."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (_recent_rollups().order_by(field.name)
                               .values_list(field.name, flat=True).distinct())


class _RollupDays:
    """Stands in for the changelist's queryset in Django's date hierarchy tag: the first and
    last day that hold ledger rows, read from the day roll-ups through their (grain, start)
    index, and every year, month or day between them (no DISTINCT over any table)."""

    def __init__(self, params: dict) -> None:
        lookups = {f"start__{part}": params[f"{DATE_FIELD}__{part}"]
                   for part in ("year", "month", "day") if params.get(f"{DATE_FIELD}__{part}")}
        self.days = UsageRollup.objects.filter(grain=RollupGrain.DAY, **lookups)

    def aggregate(self, **_):
        return self.days.aggregate(first=Min("start"), last=Max("start"))

    def datetimes(self, _field, kind):
        span = self.aggregate()
        if span["first"] is None:
            return []
        return list(_steps(span["first"], span["last"], kind))

    dates = datetimes


def _steps(first, last, kind: str):
    """Yield the start of every `kind` (year, month, day) from `first`'s to `last`'s."""
    current = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("month", "year"):
        current = current.replace(day=1)
    if kind == "year":
        current = current.replace(month=1)
    while current <= last:
        yield current
        if kind == "day":
            current += timedelta(days=1)
        elif kind == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current = current.replace(year=current.year + 1)


class RollupDateHierarchy:
    """The changelist as Django's `date_hierarchy` tag reads it, with `_RollupDays` for its
    queryset."""

    def __init__(self, changelist: ChangeList) -> None:
        self._changelist = changelist
        self.queryset = _RollupDays(changelist.params)

    def __getattr__(self, name):
        return getattr(self._changelist, name)
