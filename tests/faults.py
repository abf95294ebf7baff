"""Fault injection for the outage tests: a TCP proxy that can cut every connection to the broker,
a tansu broker advertised behind it, and a private PostgreSQL cluster that can be crashed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from registry.stream.devbroker import _wait_for, free_port, tansu_binary


class TcpProxy:
    """Forwards 127.0.0.1:port → 127.0.0.1:upstream. ``cut()`` closes every connection and drops
    each new one at once until ``restore()``. The listening socket stays open through a cut: a
    port let go could be taken meanwhile (another test, or a client's own outgoing connection
    given it as its local port), and the broker would then never come back."""

    def __init__(self, upstream: int, port: int | None = None) -> None:
        self.upstream, self.port = upstream, port or free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._open = True
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def restore(self) -> None:
        with self._lock:
            self._open = True

    def cut(self) -> None:
        with self._lock:
            self._open = False
            for s in list(self._sockets):
                _close(s)
            self._sockets.clear()

    def close(self) -> None:
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                cut = not self._open
            if cut:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                _close(client)
                continue
            with self._lock:
                if not self._open:
                    _close(client)
                    _close(upstream)
                    continue
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port nothing listens on for the block's length: bound but not listening, so
    connections are refused and no other test's server can take it meanwhile (a port found free
    and closed again could be)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@contextmanager
def proxied_broker(log_path: Path) -> Iterator[tuple[str, TcpProxy]]:
    """tansu listening on one port and advertising the proxy's: every client connection, also
    those made after metadata, passes the proxy."""
    real, proxy_port = free_port(), free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{real}",
                                    "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}", "--storage-engine", "memory://tansu/"],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proxy: TcpProxy | None = None
        try:
            _wait_for(real, process)
            proxy = TcpProxy(real, proxy_port)
            yield f"127.0.0.1:{proxy_port}", proxy
        finally:
            if proxy is not None:
                proxy.close()  # also when the test failed: no listener left for the rest of the session
            process.terminate()
            process.wait(timeout=10)


def _pg_bindir() -> Path | None:
    try:
        return Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (never the shared server), run as the postgres
    user when the test runs as root."""

    def __init__(self) -> None:
        bindir = _pg_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            raise RuntimeError("no initdb (PostgreSQL server binaries) on this machine")
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="registry-pg-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.dir / "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def destroy(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(predicate: object, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(every)
    return False


def delete_topics(bootstrap: str, names: list[str], timeout: float = 15) -> None:
    """Delete topics and wait until the broker no longer lists them."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics(names)
        assert wait_until(lambda: not set(names) & set(admin.list_topics()), timeout)
    finally:
        admin.close()
