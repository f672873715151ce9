"""What ``server run --replica`` adds to an upload: the per-team slot and the failure limiter in PostgreSQL.

A lone server keeps a team's in-flight slot (:class:`~brats_kit.server.quotas.InFlight`)
and the failed authentications (:class:`~brats_kit.server.tokens.FailureLimiter`) in its
memory; a replica takes the team's advisory lock on its lock session
(:class:`~brats_kit.server.quotas.SharedInFlight`, two statements per upload) and keeps
failures as rows (:class:`~brats_kit.server.shared.SharedFailureLimiter`, consulted on
failures only). Both are timed here on a throw-away PostgreSQL cluster (fsync on),
beside the in-memory reference, per upload (slot taken and released) and per failed
authentication (checked and counted).

    python benchmarks/replica_state.py [--uploads 2000] [--failures 500] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from brats_kit.server.db import make_engine  # noqa: E402
from brats_kit.server.quotas import InFlight, SharedInFlight  # noqa: E402
from brats_kit.server.shared import LockSession, SharedFailureLimiter  # noqa: E402
from brats_kit.server.tokens import FailureLimiter  # noqa: E402


async def _slots(gate, uploads: int, concurrency: int, teams: int) -> float:
    """Seconds for ``uploads`` slot takes and releases, ``concurrency`` at once, spread over ``teams``."""
    queue = list(range(uploads))

    async def worker():
        while queue:
            i = queue.pop()
            async with gate.slot(i % teams + 1):
                await asyncio.sleep(0)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


def slot_figures(engine, uploads: int, concurrency: int) -> tuple:
    """``(replica µs, lone server µs)`` per upload's slot."""
    locks = LockSession(engine)
    try:
        shared = asyncio.run(_slots(SharedInFlight(engine, locks), uploads, concurrency, teams=concurrency * 4))
    finally:
        locks.close()
    local = asyncio.run(_slots(InFlight(), uploads, concurrency, teams=concurrency * 4))
    return 1e6 * shared / uploads, 1e6 * local / uploads


def limiter_figures(engine, failures: int) -> tuple:
    """``(replica µs, lone server µs)`` per failed authentication (its check, then its count)."""
    out = []
    for limiter in (SharedFailureLimiter(engine, limit=10 ** 9), FailureLimiter(limit=10 ** 9)):
        began = time.perf_counter()
        for i in range(failures):
            address = f"10.0.{i % 250}.{i % 7}"
            limiter.retry_after(address)
            limiter.failed(address)
        out.append(1e6 * (time.perf_counter() - began) / failures)
    return tuple(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=2000)
    ap.add_argument("--failures", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    from test_server_support import pg_cluster_or_reason

    cluster, reason = pg_cluster_or_reason(fsync=True)
    if cluster is None:
        print(reason)
        return 1
    try:
        engine = make_engine(cluster.new_database())
        shared, local = slot_figures(engine, args.uploads, args.concurrency)
        print(f"per-team in-flight slot, per upload ({args.uploads} uploads, {args.concurrency} at once): "
              f"replica {shared:.0f} µs vs lone server {local:.0f} µs (+{shared - local:.0f} µs, "
              f"ratio {shared / local:.1f})")
        shared, local = limiter_figures(engine, args.failures)
        print(f"failure limiter, per failed authentication ({args.failures}): "
              f"replica {shared:.0f} µs vs lone server {local:.0f} µs (+{shared - local:.0f} µs, "
              f"ratio {shared / local:.1f}); a valid token never consults it")
        engine.dispose()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
