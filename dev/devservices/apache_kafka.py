"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests,
the demo and the benchmark.

The broker's jars come from Maven Central: ``resolve()`` writes a tiny pom.xml and runs
``mvn dependency:copy-dependencies`` once into a cache outside git,
``~/.cache/talivo-zoom-worker/kafka-<version>/lib/`` (base overridable with the env var
``TALIVO_KAFKA_CACHE``). Resolution is atomic (temp dir + rename) and serialised across
processes with an fcntl lock. ``apache_kafka()`` formats storage in a temp dir with a fresh
cluster id, picks two free loopback ports, starts the JVM (small heap, C1 only, serial GC;
log4j2 writes to stdout, which goes to ``log_path``) and yields a ``KafkaBroker`` that can be
stopped (SIGTERM or SIGKILL) and started again on the same ports and data. Ready means,
over the raw wire protocol, that Metadata lists the broker (unfenced: topics can be
created) and FindCoordinator answers (consumer groups work). The first clean stop dumps an
AppCDS class archive next to the jars; later JVMs map it and start ~1 s faster.

The JVM gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the *thread* that started it:
call ``start()`` from a long-lived thread (e.g. the main one), not a short-lived worker.
Needs Java 17+ (JAVA_HOME or PATH) and, for the first resolve, ``mvn``.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # the log4j2 that kafka 4.1.1 itself depends on
# C1-only JIT + serial GC: ~1 s faster start, ~40 MB less RSS, no measurable loss here
JVM_OPTS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>kafka-libs</artifactId><version>0</version>
  <packaging>pom</packaging>
  <dependencies>{deps}</dependencies>
</project>
"""
_DEP = (
    "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>"
)
_LOG4J2 = """<Configuration status="WARN" shutdownHook="disable"><Appenders>
<Console name="out" target="SYSTEM_OUT">
<PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders><Loggers>
<Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
<Logger name="kafka.request.logger" level="WARN"/><Logger name="state.change.logger" level="WARN"/>
<Root level="INFO"><AppenderRef ref="out"/></Root></Loggers></Configuration>
"""


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home, "bin", "java"), os.X_OK):
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


def java_available() -> bool:
    """True if a Java 17+ runtime is on JAVA_HOME or PATH."""
    java = _java()
    if java is None:
        return False
    out = subprocess.run(
        [java, "-XshowSettings:properties", "-version"], capture_output=True, text=True, check=False
    ).stderr
    line = next((x for x in out.splitlines() if "java.specification.version" in x), "= 0")
    return int(line.split("=")[1].strip().split(".")[0]) >= 17


def resolve(version: str = DEFAULT_VERSION) -> str:
    """Return the directory holding the broker's jars, resolving them with Maven if needed."""
    base = Path(
        os.environ.get("TALIVO_KAFKA_CACHE") or Path.home() / ".cache" / "talivo-zoom-worker"
    )
    lib = base / f"kafka-{version}" / "lib"
    if lib.is_dir():
        return str(lib)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving the same version
        if lib.is_dir():
            return str(lib)
        coords = [
            ("org.apache.kafka", "kafka_2.13", version),
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ]
        deps = "".join(_DEP.format(*c) for c in coords)
        with tempfile.TemporaryDirectory(dir=lib.parent, prefix=".resolve-") as tmp:
            Path(tmp, "pom.xml").write_text(_POM.format(deps=deps))
            cmd = [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(Path(tmp, "pom.xml")),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}/lib",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"mvn failed for kafka {version}:\n{proc.stdout}{proc.stderr}")
            os.rename(Path(tmp, "lib"), lib)
    return str(lib)


def _free_ports() -> tuple[int, int]:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return int(a.getsockname()[1]), int(b.getsockname()[1])


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _call(port: int, api_key: int, version: int, body: bytes) -> bytes:
    """One request/response of the Kafka wire protocol (non-flexible header v1)."""
    req = struct.pack(">hhih", api_key, version, 7, 5) + b"probe" + body
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
    if struct.unpack(">i", buf[4:8])[0] != 7:
        raise ConnectionError("bad correlation id")
    return buf[8:]


def _ready(port: int) -> bool:
    """Metadata v4 lists a live (unfenced) broker and FindCoordinator v0 finds the group
    coordinator (creating __consumer_offsets on a fresh cluster, waiting for it to load on
    a restart), so topics can be created and consumer groups used right away."""
    try:
        meta = _call(port, 3, 4, struct.pack(">ib", 0, 0))  # no topics, no auto-create
        if struct.unpack(">i", meta[4:8])[0] < 1:  # after throttle_time_ms: broker count
            return False
        coordinator = _call(port, 10, 0, struct.pack(">h", 5) + b"probe")
        return bool(struct.unpack(">h", coordinator[:2])[0] == 0)  # error_code NONE
    except (OSError, struct.error):
        return False


@dataclass
class KafkaBroker:
    bootstrap_servers: str
    data_dir: str
    log_path: str
    pid: int | None = None
    lib_dir: str = field(default="", repr=False)
    timings: dict[str, float] = field(default_factory=dict)  # seconds, of the last start()
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _jsa_tmp: Path | None = field(default=None, repr=False)

    @property
    def _config(self) -> Path:
        return Path(self.data_dir).parent / "server.properties"

    @property
    def _jsa(self) -> Path:
        return Path(self.lib_dir).parent / "classes.jsa"

    def _cmd(self, main: str, *args: str, cds: str) -> list[str]:
        java = _java()
        if java is None:
            raise RuntimeError("java not found (set JAVA_HOME or PATH)")
        log4j = Path(self.data_dir).parent / "log4j2.xml"
        return [
            java,
            *JVM_OPTS,
            cds,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.lib_dir}/*",
            main,
            *args,
        ]

    def _fail(self, what: str) -> RuntimeError:
        self.stop(kill=True)
        tail = Path(self.log_path).read_text(errors="replace")[-3000:]
        return RuntimeError(f"kafka {what}; log tail:\n{tail}")

    def start(self, timeout: float = 60.0) -> None:
        """(Re)start on the same ports and data dir; return once topics can be created."""
        if self._proc is not None:
            raise RuntimeError("broker already running")
        self.timings = {}
        # AppCDS: map the class archive if there is one (the JVM ignores a stale one), else
        # have this JVM dump one at exit; stop() renames it into place after a clean exit
        jsa, have = self._jsa, self._jsa.exists()
        self._jsa_tmp = None if have else jsa.with_suffix(f".{uuid.uuid4().hex}.tmp")
        use = f"-XX:SharedArchiveFile={jsa}" if have else "-Xshare:auto"
        dump = use if have else f"-XX:ArchiveClassesAtExit={self._jsa_tmp}"
        t0 = time.monotonic()
        port = int(self.bootstrap_servers.rsplit(":", 1)[1])
        with open(self.log_path, "ab") as log:
            if not Path(self.data_dir, "meta.properties").exists():
                cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
                fmt = self._cmd(
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster}",
                    "-c",
                    str(self._config),
                    cds=use,
                )
                if subprocess.run(fmt, stdout=log, stderr=subprocess.STDOUT).returncode:
                    raise self._fail("storage format failed")
                self.timings["format"] = time.monotonic() - t0
            t1 = time.monotonic()
            self._proc = subprocess.Popen(
                self._cmd("kafka.Kafka", str(self._config), cds=dump),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                preexec_fn=_die_with_parent,
            )
        self.pid = self._proc.pid
        while not _ready(port):
            if "port_open" not in self.timings:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    self.timings["port_open"] = time.monotonic() - t1
            if self._proc.poll() is not None or time.monotonic() - t1 > timeout:
                raise self._fail("did not become ready")
            time.sleep(0.05)
        self.timings.setdefault("port_open", time.monotonic() - t1)
        self.timings["ready"] = time.monotonic() - t1

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop with SIGTERM (clean shutdown) or SIGKILL, and wait for the JVM to exit."""
        proc, self._proc, self.pid = self._proc, None, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._jsa_tmp is not None and self._jsa_tmp.exists():
            if proc is not None and proc.returncode in (0, 143):  # 143: exit on SIGTERM
                os.replace(self._jsa_tmp, self._jsa)
            else:
                self._jsa_tmp.unlink()
        self._jsa_tmp = None


def single_node_properties(data: Path, controller: int) -> dict[str, str]:
    """server.properties of a one-node KRaft cluster tuned for tests, listeners aside."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        "log.dirs": str(data),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # tests use short consumer-group sessions (1-3 s) so rebalances are quick
        "group.min.session.timeout.ms": "500",
        "group.coordinator.rebalance.protocols": "classic,consumer",
        # after a SIGKILL the controller refuses the new incarnation until the old session
        # times out (default 9 s): shorten it so kill + start is quick
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
    }


@contextmanager
def apache_kafka(
    *, keep_logs_dir: str | None = None, version: str = DEFAULT_VERSION
) -> Iterator[KafkaBroker]:
    """Run a fresh broker in a temp dir; stop it and delete the dir on exit."""
    lib = resolve(version)
    tmp = Path(tempfile.mkdtemp(prefix="apache-kafka-"))
    port, controller = _free_ports()
    data = tmp / "data"
    data.mkdir()
    (tmp / "log4j2.xml").write_text(_LOG4J2)
    props = {
        **single_node_properties(data, controller),
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }
    (tmp / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    broker = KafkaBroker(f"127.0.0.1:{port}", str(data), str(tmp / "server.log"), lib_dir=lib)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        if keep_logs_dir is not None and Path(broker.log_path).exists():
            Path(keep_logs_dir).mkdir(parents=True, exist_ok=True)
            shutil.copy(broker.log_path, keep_logs_dir)
        shutil.rmtree(tmp, ignore_errors=True)
