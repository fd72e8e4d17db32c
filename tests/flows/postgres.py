"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a temporary folder,
127.0.0.1 on a free port, trust authentication, no fsync; gone when `stop()` runs or we die.

As root the server runs as the `postgres` user (PostgreSQL refuses to run as root); otherwise as us.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from fedsweep.lifeline import die_with_parent

USER = "fedsweep"  # the cluster's superuser


def binaries() -> Path | None:
    """The folder of initdb/postgres: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return versions[-1].parent if versions else None


def _owner() -> pwd.struct_passwd | None:
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _become(owner: pwd.struct_passwd | None, *, tie: bool = False) -> None:
    if owner is not None:
        os.setgid(owner.pw_gid)
        os.setuid(owner.pw_uid)
    if tie:  # SIGQUIT: PostgreSQL's immediate shutdown
        die_with_parent(signal.SIGQUIT)


class Postgres:
    """A PostgreSQL server on 127.0.0.1 for the life of this object (or of this process)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin, owner = bin_dir, _owner()
        self.dir = Path(tempfile.mkdtemp(prefix="fedsweep-pg-"))
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            preexec_fn=lambda: _become(owner),
            cwd=self.dir,
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        log = (self.dir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.dir / "data"),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            preexec_fn=lambda: _become(owner, tie=True),
        )
        deadline = time.monotonic() + 60
        while self._psql("select 1").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"PostgreSQL did not start: {(self.dir / 'postgres.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-tAc",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    def query(self, sql: str, database: str = "postgres") -> str:
        """psql's unaligned answer (one row a line, `|` between columns)."""
        done = self._psql(sql, database)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new database; Prefect's connection URL for it (the asyncpg driver)."""
        self.query(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
