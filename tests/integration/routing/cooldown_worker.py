"""A separate OS process that records failures or reads cooldown state (for test_cooldown_shared).

Usage: python -m tests.integration.routing.cooldown_worker fail|check NAME [COUNT]
"""

import asyncio
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")

import django  # noqa: E402

django.setup()

from routing import resilience  # noqa: E402


async def main(action: str, name: str, count: int) -> None:
    if action == "fail":
        for _ in range(count):
            await resilience.record_failure(name, kind="server_error", retry_after=None)
        print("recorded", count)
    else:
        print("active" if await resilience.cooldown_active(name) else "inactive")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1))
