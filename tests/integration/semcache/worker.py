"""A second "gateway process" for the multi-process tests: JSON commands on stdin, answers out.

Run as `python -m tests.integration.semcache.worker REDIS_URL PREFIX` from the repository root.
"""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmops.settings.test")
    import django

    django.setup()
    import numpy as np

    from semcache.namespaces import build_scope
    from semcache.services import CacheEngine
    from semcache.store import RedisStore

    engine = CacheEngine(RedisStore(url=sys.argv[1], prefix=sys.argv[2]))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        scope = build_scope(team_id=cmd.get("team", 1), requested_model="auto",
                            answer_params={},
                            messages=[{"role": "user", "content": cmd.get("text", "q")}])
        out = {}
        if cmd["op"] == "put":
            vector = np.asarray(cmd["vector"], dtype=np.float32)
            entry = engine.put(scope, vector=vector, message={"role": "assistant",
                                                              "content": cmd.get("answer", "a")},
                               finish_reason="stop", model="m", usage={}, cost=0,
                               ttl_seconds=cmd.get("ttl", 60))
            out = {"id": entry.id}
        elif cmd["op"] == "find":
            found = engine.find_semantic(scope, np.asarray(cmd["vector"], dtype=np.float32),
                                         threshold=0.9, guards=False)
            out = {"id": found.entry.id if found else None,
                   "indexed": len(engine.registry.index_for(scope.namespace))}
        elif cmd["op"] == "purge":
            out = {"purged": engine.purge()}
        elif cmd["op"] == "expire":
            out = {"expired": engine.expire()}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
