"""Candidate code changes, applied by monkeypatching for an A/B run only (bench/ab.py).

Listed in INSTALLED_APPS by bench/ab_settings.py when BENCH_AB_PATCHES names them (comma
separated); each patch is measured here before it is proposed for the owning app.
"""

from django.apps import AppConfig
from django.db import connections


def _fast_counter_bulk_update(objs, fields, batch_size=None) -> int:
    """BudgetCounter bulk_update as one executemany of a plain UPDATE (no CASE WHEN compile)."""
    from budgets.models import BudgetCounter

    objs = list(objs)
    if not objs:
        return 0
    connection = connections["default"]
    columns = [BudgetCounter._meta.get_field(name) for name in fields]
    sql = (f'UPDATE "{BudgetCounter._meta.db_table}" SET '
           + ", ".join(f'"{c.column}" = %s' for c in columns) + ' WHERE "id" = %s')
    rows = [[c.get_db_prep_save(getattr(o, c.attname), connection) for c in columns] + [o.pk]
            for o in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(objs)


def _patch_budget_counters() -> None:
    from budgets.models import BudgetCounter

    BudgetCounter.objects.bulk_update = _fast_counter_bulk_update


def _patch_no_conn_refresh() -> None:
    # The gateway's DB pool calls close_old_connections() before every unit of work; with
    # CONN_HEALTH_CHECKS that costs a `SELECT 1` round trip each time. Refresh at most once
    # a second per thread instead.
    import threading
    import time

    from django.db import close_old_connections

    import llmops.db as db

    local = threading.local()

    def run(fn, args, kwargs):
        now = time.monotonic()
        if now - getattr(local, "checked", 0.0) > 1.0:
            close_old_connections()
            local.checked = now
        return fn(*args, **kwargs)

    db._run_with_fresh_connection = run


def _patch_auth_cache() -> None:
    # Remember a verified key for a few seconds per process (LiteLLM caches keys for 60 s), so
    # most requests skip the key query; a revoked key stops working within the TTL.
    import time

    import llmops.authentication as authentication

    lookup = authentication.api_key_from_bearer
    remembered: dict[str, tuple[float, object]] = {}

    def cached(*, raw_key: str):
        hit = remembered.get(raw_key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < 5.0:
            return hit[1]
        api_key = lookup(raw_key=raw_key)
        if api_key is not None:
            remembered[raw_key] = (now, api_key)
        return api_key

    authentication.api_key_from_bearer = cached


def _patch_switch_interval() -> None:
    # A database thread that gets its reply must win the GIL back before it can send the next
    # statement of a transaction that holds the key's counter rows locked; with the default 5 ms
    # switch interval that wait is inside the lock window of every request of the key.
    import os
    import sys

    sys.setswitchinterval(float(os.environ.get("BENCH_AB_SWITCH_INTERVAL", "0.0005")))


def _patch_stock_asgi_cycle() -> None:
    # Django's own request cycle on the API too (ThreadSensitiveContext, signals via
    # sync_to_async): the baseline for GatewayASGIHandler's inline one.
    from django.core.handlers.asgi import ASGIHandler

    from llmops.async_middleware import GatewayASGIHandler

    GatewayASGIHandler.__call__ = ASGIHandler.__call__


def _patch_orm_settle() -> None:
    # Settlement through the ORM transaction on PostgreSQL too: the baseline for
    # budgets/pg_settlement.py's one statement.
    from budgets import services

    services._settle_in_one_statement = lambda **kwargs: None


def _patch_orm_reads() -> None:
    # The key lookup and admission's budget lookup through querysets again: the baseline for
    # their SQL built once per process.
    from budgets import pg_admission, selectors, services
    from llmops import selectors as key_selectors
    from llmops.models import ApiKey

    key_selectors._api_key_with_team_and_user = (
        lambda prefix: ApiKey.objects.select_related("team", "user").filter(prefix=prefix).first())

    def applicable(*, principal, now):
        budgets = selectors.budgets_for_principal(principal=principal)
        limits = services._limits_for(principal, now=now, budgets=list(budgets))
        return budgets, services._counters_find(limits, now=now) if limits else {}

    pg_admission.applicable = applicable


def _patch_embed_one_chunk() -> None:
    # The embedder's old chunking: sorted, 64 at a time, whatever the lengths (baseline for
    # semcache/onnx_backend.py's length buckets).
    from semcache import onnx_backend

    def one_chunk(lengths):
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        return [order[i:i + 64] for i in range(0, len(order), 64)]

    onnx_backend._length_buckets = one_chunk


def _patch_unbatched_misses() -> None:
    # A miss written to Redis at once (its own round trip), and a hit's feedback mapping in a
    # call of its own: the baseline for semcache/store.py's batched misses.
    from semcache.store import RedisStore

    record_hit = RedisStore.record_hit

    def record_miss(self, namespace):
        self._call(lambda: self.r.hincrby(self._k("s", namespace), "misses", 1))

    def separate_hit(self, entry_id, namespace, *, request_id=None, **kwargs):
        record_hit(self, entry_id, namespace, **kwargs)
        if request_id:
            self.remember_request(request_id, entry_id)

    RedisStore.record_miss = record_miss
    RedisStore.record_hit = separate_hit


PATCHES = {"budget_counters": _patch_budget_counters, "conn_refresh": _patch_no_conn_refresh,
           "auth_cache": _patch_auth_cache, "switch_interval": _patch_switch_interval,
           "stock_asgi_cycle": _patch_stock_asgi_cycle, "orm_settle": _patch_orm_settle,
           "orm_reads": _patch_orm_reads, "embed_one_chunk": _patch_embed_one_chunk,
           "unbatched_misses": _patch_unbatched_misses}


class AbPatchesConfig(AppConfig):
    name = "bench"
    label = "bench_ab_patches"

    def ready(self) -> None:
        import os

        for name in filter(None, os.environ.get("BENCH_AB_PATCHES", "").split(",")):
            PATCHES[name]()
