"""The cost of one quota decision in Python (a slot taken in two quotas at
once, as a call takes the per-IP one and its group), in this process's
memory, in the machine's SQLite file, and through Redis at $REDIS_URL, side
by side in one run. Printed as ``RESULT {json}`` for scripts/quota-speed."""

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_entreprise._quota import MemoryStore, RedisStore, SqliteStore  # noqa: E402

# Limits no run reaches, windows of a second: every decision admits.
KEYS = [("bench ip", 2**31, 1000), ("bench group", 2**31, 1000)]


def per_decision(store, n):
    """The median of 5 batches of ``n`` decisions, per decision, in µs."""
    for _ in range(n // 10):
        store.acquire(KEYS)
    batches = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            store.acquire(KEYS)
        batches.append((time.perf_counter() - t) * 1e6 / n)
    return sorted(batches)[2]


with tempfile.TemporaryDirectory(prefix="api-entreprise-bench-") as d:
    result = {"language": f"Python {platform.python_version()}"}
    result["memory_us"] = per_decision(MemoryStore(), 50000)
    sqlite = SqliteStore(Path(d) / "quotas.sqlite3")
    result["sqlite_us"] = per_decision(sqlite, 500)
    sqlite.close()
    if os.environ.get("REDIS_URL"):
        redis = RedisStore(os.environ["REDIS_URL"], "bench-python:")
        result["redis_us"] = per_decision(redis, 2000)
        redis.close()
print("RESULT " + json.dumps(result))
