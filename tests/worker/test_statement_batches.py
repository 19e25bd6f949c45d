"""Statement batches on a real Postgres: callers' statements go together, each gets its own
outcome, one bad statement fails only its own caller, and a cancelled caller's neighbours
are unharmed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

import migrations
from token_store import table as tokens_table
from worker.runtime.resources import batched_token_reads
from worker.statement_batches import StatementBatcher, Together

Pool = AsyncConnectionPool[AsyncConnection]

UPSERT = (
    "INSERT INTO {t} (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
    " RETURNING v"
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=3, open=False) as opened:
        await opened.wait()
        yield opened


@pytest.fixture
async def table(pool: Pool) -> str:
    name = f"batch_{uuid.uuid4().hex[:8]}"
    async with pool.connection() as conn:
        await conn.execute(f"CREATE TABLE {name} (k text PRIMARY KEY, v text NOT NULL UNIQUE)")
    return name


async def rows(pool: Pool, table: str) -> dict[str, str]:
    async with pool.connection() as conn:
        cursor = await conn.execute(f"SELECT k, v FROM {table}")
        return dict(await cursor.fetchall())


async def test_concurrent_callers_share_round_trips_and_get_their_own_rows(
    pool: Pool, table: str
) -> None:
    batches = StatementBatcher(pool)
    sql = (UPSERT.format(t=table),)
    outcomes = await asyncio.gather(
        *(batches.run(sql, f"k{n:03}", (f"k{n:03}", f"v{n}")) for n in range(200))
    )
    assert [o[0].rows for o in outcomes] == [[(f"v{n}",)] for n in range(200)]
    assert all(o[0].rowcount == 1 for o in outcomes)
    assert await rows(pool, table) == {f"k{n:03}": f"v{n}" for n in range(200)}
    # 200 callers at once: in batches of at most 64, not one round trip each.
    assert batches.sent == 4


def upsert_together(table: str) -> Together:
    return Together(
        "WITH c AS (SELECT * FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS c(k, v, n)),"
        f" up AS (INSERT INTO {table} (k, v) SELECT k, v FROM c ORDER BY k"
        " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING k, v)"
        " SELECT c.n, up.v FROM c JOIN up USING (k, v)"
    )


async def test_a_together_statement_is_sent_once_and_each_caller_gets_its_own_rows(
    pool: Pool, table: str
) -> None:
    batches = StatementBatcher(pool)
    kind = (upsert_together(table), Together(
        f"SELECT c.n, t.k FROM unnest(%b::text[]) WITH ORDINALITY AS c(v, n) JOIN {table} t"
        " USING (v)"
    ))  # fmt: skip
    outcomes = await asyncio.gather(
        *(batches.run(kind, f"k{n:03}", (f"k{n:03}", f"v{n}"), (f"v{n}",)) for n in range(100)),
        batches.run(kind, "zzz", ("zzz", "w"), ("nothing has this v",)),
    )
    assert [o[0].rows for o in outcomes[:100]] == [[(f"v{n}",)] for n in range(100)]
    assert [o[1].rows for o in outcomes[:100]] == [[(f"k{n:03}",)] for n in range(100)]
    assert outcomes[100][1].rows == [] and outcomes[100][1].rowcount == 0
    assert await rows(pool, table) == {f"k{n:03}": f"v{n}" for n in range(100)} | {"zzz": "w"}
    assert batches.sent == 2  # 101 callers: two batches, not a statement each


async def test_callers_a_together_statement_cannot_take_at_once_run_alone(
    pool: Pool, table: str
) -> None:
    """Two upserts of one row in one statement is an error in Postgres; the batch is rolled
    back and each caller runs alone, in its turn."""
    batches = StatementBatcher(pool)
    kind = (upsert_together(table),)
    outcomes = await asyncio.gather(
        batches.run(kind, "a", ("a", "first")),
        batches.run(kind, "a", ("a", "second")),
        batches.run(kind, "b", ("b", "other")),
    )
    assert [o[0].rowcount for o in outcomes] == [1, 1, 1]
    assert (await rows(pool, table))["b"] == "other"
    assert batches.sent == 4  # the batch, then each caller alone


async def test_a_statement_that_fails_fails_only_its_caller(pool: Pool, table: str) -> None:
    batches = StatementBatcher(pool)
    sql = (UPSERT.format(t=table),)
    await batches.run(sql, "a", ("a", "taken"))
    outcomes = await asyncio.gather(
        batches.run(sql, "b", ("b", "fine")),
        batches.run(sql, "c", ("c", "taken")),  # v is unique: this one violates it
        batches.run(sql, "d", ("d", "also fine")),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], psycopg.errors.UniqueViolation)
    assert not isinstance(outcomes[0], BaseException) and outcomes[0][0].rows == [("fine",)]
    assert not isinstance(outcomes[2], BaseException)
    assert await rows(pool, table) == {"a": "taken", "b": "fine", "d": "also fine"}


async def test_statements_of_a_kind_run_in_order_and_see_each_other(pool: Pool, table: str) -> None:
    """Two statements per caller (a write, then a read): the read sees the write before it,
    and every caller's pair comes back together."""
    batches = StatementBatcher(pool)
    kind = (UPSERT.format(t=table), f"SELECT count(*) FROM {table} WHERE k <= %s")
    outcomes = await asyncio.gather(
        *(batches.run(kind, f"k{n}", (f"k{n}", f"v{n}"), (f"k{n}",)) for n in range(10))
    )
    for n, (written, counted) in enumerate(outcomes):
        assert written.rows == [(f"v{n}",)]
        assert counted.rows[0][0] >= 1  # at least its own row, written just before


async def test_a_cancelled_caller_leaves_the_others_their_outcomes(pool: Pool, table: str) -> None:
    batches = StatementBatcher(pool)
    sql = (UPSERT.format(t=table),)
    first = asyncio.ensure_future(batches.run(sql, "x", ("x", "1")))
    waiting = [
        asyncio.ensure_future(batches.run(sql, f"y{n}", (f"y{n}", f"2{n}"))) for n in range(5)
    ]
    await asyncio.sleep(0)
    waiting[2].cancel()
    done = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert sum(not isinstance(d, BaseException) for d in done) == 5
    await batches.settle()
    assert {"x", "y0", "y1", "y3", "y4"} <= set(await rows(pool, table))


async def test_an_exhausted_pool_fails_the_batch_at_once(database_url: str, table: str) -> None:
    async with AsyncConnectionPool(
        database_url, min_size=1, max_size=1, timeout=0.2, open=False
    ) as small:
        await small.wait()
        batches = StatementBatcher(small)
        sql = (UPSERT.format(t=table),)
        async with small.connection():  # the only connection, held
            outcomes = await asyncio.gather(
                *(batches.run(sql, f"k{n}", (f"k{n}", f"v{n}")) for n in range(3)),
                return_exceptions=True,
            )
        assert all(isinstance(o, PoolTimeout) for o in outcomes)
        assert (await batches.run(sql, "k9", ("k9", "v9")))[0].rows == [("v9",)]

        # Those queued behind a batch that found no connection fail with it: none waits
        # two pool timeouts.
        async with small.connection():
            started = asyncio.get_running_loop().time()
            first = asyncio.ensure_future(batches.run(sql, "a", ("a", "1")))
            await asyncio.sleep(0.1)  # its batch is waiting for the pool
            behind = await asyncio.gather(
                batches.run(sql, "b", ("b", "2")), first, return_exceptions=True
            )
            waited = asyncio.get_running_loop().time() - started
        assert all(isinstance(o, PoolTimeout) for o in behind)
        assert waited < 0.35


async def test_batched_token_reads_read_what_the_token_store_reads(
    database_url: str, pool: Pool
) -> None:
    """The worker's token reads (``batched_token_reads``) give the row ``table.read`` gives,
    or None for a user without one, many at once."""
    migrations.apply(database_url)
    user = f"u-{uuid.uuid4().hex[:8]}"
    async with pool.connection() as conn:
        stored = await tokens_table.upsert(
            conn,
            user_id=user,
            zoom_user_id="z-1",
            zoom_account_id="acct-1",
            scopes=("meeting:write",),
            tokens=tokens_table.SealedTokens(b"sealed-access", b"sealed-refresh", "k1"),
            access_expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        direct = await tokens_table.read(conn, user)
    read_row = batched_token_reads(StatementBatcher(pool))
    found = await asyncio.gather(*(read_row(user) for _ in range(5)), read_row("nobody"))
    assert found[:5] == [stored] * 5 == [direct] * 5
    assert found[5] is None


async def waiting_for_locks(database_url: str, count: int) -> None:
    """Until ``count`` sessions of this database wait for a row lock (10 s at most)."""
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as conn,
        asyncio.timeout(10),
    ):
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if (await cursor.fetchone() or (0,))[0] >= count:
                return
            await asyncio.sleep(0.02)


async def test_a_deadlock_victim_runs_again(pool: Pool, database_url: str) -> None:
    """A batch holds its rows' locks until it commits, so it can deadlock with a statement that
    locks several rows in another order (as ``DELETE FROM leases WHERE owner = ...`` does, in
    the order its rows lie on disk), even a statement in a batch of its own. Postgres fails one
    of them; that one runs again (nothing of it stayed) instead of failing its caller."""
    name = f"locks_{uuid.uuid4().hex[:8]}"
    take = (
        f"INSERT INTO {name} AS l (key, owner) VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner WHERE l.owner = EXCLUDED.owner"
        " RETURNING 1"
    )
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute(f"CREATE TABLE {name} (key text PRIMARY KEY, owner text NOT NULL)")
        for key, owner in (("b", "old"), ("a", "old"), ("ab", "other")):  # b before a on disk
            await conn.execute(f"INSERT INTO {name} VALUES (%s, %s)", (key, owner))
    takers, releases = StatementBatcher(pool), StatementBatcher(pool)
    async with pool.connection() as blocker:
        await blocker.set_autocommit(False)
        await blocker.execute(f"SELECT 1 FROM {name} WHERE key = 'ab' FOR UPDATE")
        # One batch takes a, then waits for ab (held), then will want b (an ON CONFLICT DO
        # UPDATE locks the row even where its WHERE leaves it as it is).
        taking = [
            asyncio.ensure_future(takers.run((take,), key, (key, "new")))
            for key in ("a", "ab", "b")
        ]
        await waiting_for_locks(database_url, 1)
        # Alone in its batch: deletes b, then waits for a.
        release = asyncio.ensure_future(
            releases.run((f"DELETE FROM {name} WHERE owner = %s",), "a", ("old",))
        )
        await waiting_for_locks(database_url, 2)
        await blocker.rollback()  # the batch goes on to b: a deadlock, the release its victim
    (released,) = await release
    taken = await asyncio.gather(*taking)  # none fails, whichever Postgres chose as the victim
    assert released.rowcount == 2
    if releases.sent == 2:  # the release was the victim (usually: it waited first), then again
        assert takers.sent == 1
        assert [t[0].rows for t in taken] == [[], [], []]
    else:  # the takers' batch was, and each ran again alone after the release
        assert takers.sent == 4
        assert [t[0].rows for t in taken] == [[(1,)], [], [(1,)]]


async def test_a_caller_cancelled_after_its_batch_went_is_cancelled_once_it_is_through(
    pool: Pool, table: str, database_url: str
) -> None:
    """What a cancelled caller does next (give a lease back) must come after its statement:
    the cancellation waits for the batch, which here waits for a row lock held elsewhere."""
    batches = StatementBatcher(pool)
    sql = (UPSERT.format(t=table),)
    await batches.run(sql, "held", ("held", "0"))
    async with await AsyncConnection.connect(database_url) as other:
        await other.execute(f"SELECT * FROM {table} WHERE k = 'held' FOR UPDATE")
        call = asyncio.ensure_future(batches.run(sql, "held", ("held", "1")))
        await asyncio.sleep(0.3)  # sent, and waiting for the lock
        call.cancel()
        await asyncio.sleep(0.2)
        assert not call.done()  # still waiting for its batch
        await other.rollback()  # the lock goes
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await rows(pool, table))["held"] == "1"  # it did take effect, before the caller went on


async def test_a_parameter_that_cannot_be_sent_fails_its_caller_and_applies_nothing_twice(
    pool: Pool, table: str
) -> None:
    batches = StatementBatcher(pool)
    count = (
        f"INSERT INTO {table} (k, v) VALUES (%s, %s)"
        f" ON CONFLICT (k) DO UPDATE SET v = ({table}.v::int + 1)::text RETURNING v",
    )
    outcomes = await asyncio.gather(
        batches.run(count, "a", ("a", "1")),
        batches.run(count, "b", ("b", "nul\x00inside")),  # Postgres text cannot hold NUL
        batches.run(count, "c", ("c", "5")),  # v is unique
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Exception)
    assert not isinstance(outcomes[0], BaseException) and not isinstance(outcomes[2], BaseException)
    assert await rows(pool, table) == {"a": "1", "c": "5"}  # each once, not rerun on top
