"""A throwaway PostgreSQL for tests and benchmarks: Debian's server binaries, `initdb` in a
temporary directory, `pg_ctl` on a free loopback port, stopped by pid and removed at the end.

No docker, no system service: the server belongs to the process that started it. PostgreSQL
refuses to run as root, so under root it runs as the system user `twinpg` (created when
missing). `fsync` stays on: durability across a crash is what the tests check.

    with throwaway() as server:
        store = PostgresStore(server.dsn)
        server.restart(mode="immediate")  # a crash: recovery from the WAL on start
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = "twinpg"
"""The unprivileged user the server runs as when we are root."""


def find_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl`, or `$PG_BIN`."""
    explicit = os.environ.get("PG_BIN")
    candidates = (
        [explicit]
        if explicit
        else sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(p.split("/")[-2]),
            reverse=True,
        )
    )
    for d in candidates:
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> str | None:
    """None when we are not root (the server runs as us); else `twinpg`, created if needed."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    return USER


class PgServer:
    """One PostgreSQL cluster in its own temporary directory (data, socket, log)."""

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise FileNotFoundError(
                "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin); "
                "apt-get install postgresql"
            )
        self.bin_dir = found
        self.port = port or _free_port()
        self.user = _unprivileged_user()
        # Not under pytest's tmp_path: its parents are 0700 root, the server user could not
        # reach the directory.
        self.dir = Path(tempfile.mkdtemp(prefix="twinpg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.pid: int | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @property
    def url(self) -> str:
        """The same as a URL, the form `twin serve --store` takes."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def init(self) -> None:
        # --no-sync only skips syncing initdb's own files (a fresh throwaway cluster); the
        # server itself runs with fsync on.
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# throwaway server of loadtests/pg.py\n"
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
                # On this machine's ext4 disk, with the default (on) a COMMIT waited 55-60
                # ms about every 16 MB segment of WAL once writeback was under way (every
                # 1.5 s at 7,000 movements/s): docs/postgres.md, "Commit stalls".
                # Durability is the same: WAL records are checksummed either way.
                "wal_init_zero = off\n"
                "max_connections = 50\n"
                "logging_collector = off\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            done = self._run(
                "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", check=False
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL not ready after {timeout_s} s\n{self._log_tail()}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (a clean shutdown), or `immediate` (no checkpoint, as in a
        crash: the next start recovers from the WAL). Kills the pid if it does not stop."""
        if self.pid is None:
            return
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30", check=False)
        pid, self.pid = self.pid, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)  # still there: pg_ctl gave up
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)

    def restart(self, mode: str = "fast") -> None:
        """Stop (`fast` or `immediate`) and start again on the same port and data."""
        self.stop(mode)
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def throwaway(bin_dir: Path | None = None) -> Iterator[PgServer]:
    """A started server, stopped and removed on exit."""
    server = PgServer(bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


if __name__ == "__main__":  # a quick manual check: start, print the DSN, stop
    with throwaway() as s:
        print(s.dsn, "pid", s.pid)
