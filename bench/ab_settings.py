"""Settings for A/B experiments on proposed gateway changes (benches only, never production).

Reads llmops' own settings, then applies the variant named in the environment:
BENCH_AB_DROP_MIDDLEWARE=Name[,Name] removes middleware classes by class name, and
BENCH_AB_SWAP_MIDDLEWARE=Name=dotted.path replaces one by another; BENCH_AB_SET and
BENCH_AB_DATABASE_SET override settings (below).
"""

import os

from llmops.settings.base import *  # noqa: F403
from llmops.settings.base import MIDDLEWARE

_drop = {name for name in os.environ.get("BENCH_AB_DROP_MIDDLEWARE", "").split(",") if name}
_swap = dict(item.split("=", 1) for item in
             os.environ.get("BENCH_AB_SWAP_MIDDLEWARE", "").split(",") if "=" in item)
MIDDLEWARE = [_swap.get(path.rsplit(".", 1)[-1], path) for path in MIDDLEWARE
              if path.rsplit(".", 1)[-1] not in _drop]

# BENCH_AB_SET='{"NAME": value, ...}' overrides settings (JSON values);
# BENCH_AB_DATABASE_SET the same inside DATABASES["default"] (e.g. {"CONN_HEALTH_CHECKS": false}).
if os.environ.get("BENCH_AB_SET"):
    import json

    globals().update(json.loads(os.environ["BENCH_AB_SET"]))
if os.environ.get("BENCH_AB_DATABASE_SET"):
    import json

    from llmops.settings.base import DATABASES

    DATABASES["default"].update(json.loads(os.environ["BENCH_AB_DATABASE_SET"]))

