"""``python -m bench.statements``: the client CPU of one small statement, alone vs batched.

Cited by ``worker/statement_batches.py``. Postgres as the tests get it (``DATABASE_URL``, else
the embedded one). 128 concurrent callers (``--callers``) share a pool of 16 connections, as
a worker with ``MAX_IN_FLIGHT=128`` does, and each upserts one row of a 500-row table at a
time (the shape of a lease take), ``--statements`` in all:

    alone      a pooled connection per statement, ``conn.execute`` (the worker before)
    batched    ``StatementBatcher.run``: concurrent callers' statements in one round trip
    together   the same, as one ``Together`` statement over arrays (``unnest``) per batch

Prints, per way, this process's CPU (user + sys, ``getrusage``) per statement, the wall
statements/s and, batched, the mean statements per round trip. Every row is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable

import uvloop
from devservices import create_database, postgres_service
from psycopg_pool import AsyncConnectionPool

import worker  # noqa: F401  (the pool mend, as the worker has it)
from worker.statement_batches import StatementBatcher, Together

POOL, ROWS = 16, 500
UPSERT = "INSERT INTO t (k, n) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET n = t.n + 1"
UPSERT_TOGETHER = Together(
    "WITH c AS (SELECT * FROM unnest(%b::text[], %b::int[]) WITH ORDINALITY AS c(k, n, i)),"
    " up AS (INSERT INTO t (k, n) SELECT k, n FROM c ORDER BY k"
    " ON CONFLICT (k) DO UPDATE SET n = t.n + 1 RETURNING k)"
    " SELECT c.i FROM c JOIN up USING (k)"
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(dsn: str, way: str, statements: int, callers: int) -> None:
    async with AsyncConnectionPool(
        dsn, min_size=POOL, max_size=POOL, open=False, kwargs={"autocommit": True}
    ) as pool:
        await pool.wait()
        async with pool.connection() as conn:
            await conn.execute("DROP TABLE IF EXISTS t")
            await conn.execute("CREATE TABLE t (k text PRIMARY KEY, n integer NOT NULL)")
        batches = StatementBatcher(pool)

        async def alone(key: str) -> None:
            async with pool.connection() as conn:
                await conn.execute(UPSERT, (key, 1))

        async def batched(key: str) -> None:
            await batches.run((UPSERT,), key, (key, 1))

        async def together(key: str) -> None:
            (ran,) = await batches.run((UPSERT_TOGETHER,), key, (key, 1))
            assert ran.rowcount == 1, ran

        one: Callable[[str], Awaitable[None]] = {
            "alone": alone,
            "batched": batched,
            "together": together,
        }[way]
        todo = iter(range(statements))

        async def caller() -> None:
            for n in todo:
                await one(f"k{n % ROWS}")

        started, cpu = time.monotonic(), _cpu()
        await asyncio.gather(*(caller() for _ in range(callers)))
        seconds, cpu = time.monotonic() - started, _cpu() - cpu
        async with pool.connection() as conn:
            total = await (await conn.execute("SELECT sum(n) FROM t")).fetchone()
        assert total is not None and total[0] == statements, total
        per_trip = f", {statements / batches.sent:.1f} per round trip" if batches.sent else ""
        print(
            f"{way:8} {cpu / statements * 1e6:6.0f} us CPU per statement, "
            f"{statements / seconds:7.0f} statements/s{per_trip}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--callers", type=int, default=128, help="concurrent callers")
    args = parser.parse_args()
    with postgres_service() as service:
        dsn = create_database(service.url, "bench_statements")
        for way in ("alone", "batched", "together") * 2:
            uvloop.run(_measure(dsn, way, args.statements, args.callers))


if __name__ == "__main__":
    main()
