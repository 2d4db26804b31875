"""Start the production server: uvicorn workers serving llmops.asgi, PORT/WEB_CONCURRENCY aware.

Usage: python -m llmops.serve [--host H] [--port P] [--workers N]
"""

import argparse
import os
import shutil

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"),
                        help="Bind address (default: HOST or 127.0.0.1).")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                        help="Port (default: PORT or 8000).")
    parser.add_argument("--workers", type=int,
                        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
                        help="Worker processes (default: WEB_CONCURRENCY or 1).")
    args = parser.parse_args()

    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        # Stale files from a previous run would be summed into this run's counters.
        shutil.rmtree(multiproc_dir, ignore_errors=True)
        os.makedirs(multiproc_dir, exist_ok=True)
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.base")
    uvicorn.run(
        "llmops.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        lifespan="off",
        access_log=False,  # the gateway writes its own structured line per request
        timeout_graceful_shutdown=30,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
