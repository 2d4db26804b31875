"""Gateway stand-ins for the concurrency proof: threads that admit → wait → settle, in any process.

Each simulated request does what the pipeline does around a slow provider: `request_admit` with
the upper bound, a sleep, then `request_settle` with an actual cost at or below the bound (some
fail upstream and cost nothing, some settle twice as a retry would). Outcomes are returned as
plain data so a parent process can check them against the database.
"""

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal


def _setup_django(db_name: str) -> None:
    """Configure Django in a spawned process and point it at the parent's test database."""
    import django
    from django.conf import settings

    django.setup()
    settings.DATABASES["default"]["NAME"] = db_name
    from django.db import connections

    connections["default"].settings_dict["NAME"] = db_name


def run_requests(*, principal, request_ids: list[str], reserve: Decimal, threads: int,
                 provider_seconds: float, seed: int) -> dict:
    """Run the requests on `threads` threads; return {"admitted": [...], "refused": [...]}."""
    from django.db import connection

    from budgets.errors import BudgetExceeded
    from budgets.services import UsageEntry, request_admit, request_settle

    admitted, refused, errors = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(min(threads, len(request_ids)))

    def one(index: int, request_id: str) -> None:
        rng = random.Random(seed * 100_003 + index)
        try:
            if index < threads:
                barrier.wait(timeout=30)  # start the first wave together
            try:
                admission = request_admit(principal=principal, request_id=request_id,
                                          estimated_cost=reserve)
            except BudgetExceeded as exc:
                with lock:
                    refused.append((request_id, exc.code))
                return
            time.sleep(provider_seconds * rng.uniform(0.5, 1.5))  # the slow provider
            failed = rng.random() < 0.1
            cost = Decimal(0) if failed else (reserve * Decimal(rng.randint(25, 100)) / 100)
            entry = UsageEntry(
                request_id=request_id, principal=principal, requested_model="sim",
                served_model="sim", estimated_cost=reserve, cost=cost,
                status="upstream_error" if failed else "ok",
            )
            request_settle(admission=admission, entry=entry)
            if rng.random() < 0.1:
                request_settle(admission=admission, entry=entry)  # a retried settle
            with lock:
                admitted.append((request_id, str(cost)))
        except Exception as exc:  # reported to the parent, which fails the test
            with lock:
                errors.append(f"{request_id}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(len(request_ids)), request_ids))
    return {"admitted": admitted, "refused": refused, "errors": errors, "pid": os.getpid()}


def process_main(db_name: str, kwargs: dict, results) -> None:
    """Entry point of one gateway process (multiprocessing, spawn)."""
    _setup_django(db_name)
    results.put(run_requests(**kwargs))


def process_die_after_admit(db_name: str, principal, request_ids: list[str], reserve: str,
                            admitted) -> None:
    """Admit some requests, then die without settling them (a killed gateway process)."""
    _setup_django(db_name)
    from budgets.errors import BudgetExceeded
    from budgets.services import request_admit

    for request_id in request_ids:
        try:
            request_admit(principal=principal, request_id=request_id,
                          estimated_cost=Decimal(reserve))
            admitted.put(request_id)
        except BudgetExceeded:
            pass
    admitted.close()
    admitted.join_thread()  # flush to the parent before dying
    os._exit(1)  # no settle, no cleanup: exactly what a SIGKILL leaves behind
