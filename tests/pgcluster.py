"""A throwaway PostgreSQL server that a test owns and may stop, crash and restart.

    with PostgresCluster(tmp_path) as cluster:
        cluster.create_database("faults")
        ...  # use cluster.url("faults")
        cluster.stop("immediate")  # simulate a crash
        cluster.start()  # crash recovery, same port and data

The cluster always lives in a fresh `tempfile.mkdtemp(prefix="pgtest-", dir="/tmp")`, not in
`base_dir`: pytest's tmp_path (/tmp/pytest-of-root/...) is not traversable by the `postgres`
user that the server must run as when the tests run as root, and it is too long for the
server's unix socket path (107 bytes). On cleanup the server log is copied to
`base_dir / "postgres.log"` for inspection, and the temporary directory is removed.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

TIMEOUT = 120  # seconds, for any one PostgreSQL command
INITDB_OPTIONS = ("--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8")


def _bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl, createdb, ... of one PostgreSQL version."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return Path(dirs[-1]) if dirs and os.path.exists(f"{dirs[-1]}/initdb") else None


def _as_root() -> bool:
    return os.geteuid() == 0


def postgres_available() -> bool:
    """initdb and pg_ctl are installed (and, when running as root, a `postgres` user exists)."""
    if _as_root():
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return _bin_dir() is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One server; its directory exists from construction until cleanup() or the with block ends."""

    def __init__(
        self,
        base_dir: Path,
        *,
        max_connections: int = 50,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        self.bin_dir = bin_dir
        self.base_dir = Path(base_dir)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "max_connections": str(max_connections),
            # Safe against a server crash (not an OS crash). synchronous_commit stays on:
            # with it off, commits acknowledged just before stop("immediate") are lost.
            "fsync": "off",
            "full_page_writes": "off",
            **(extra_settings or {}),
        }

    def _run(self, program: str, *args: str) -> None:
        """Run a PostgreSQL program as the cluster's owner; raise with its output on failure."""
        command = [str(self.bin_dir / program), *args]
        if _as_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        """initdb, then write the settings into postgresql.conf (so restarts keep them)."""
        self.root.chmod(0o755)
        if _as_root():
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", *INITDB_OPTIONS)
        quote = "'"
        lines = [f"{k} = '{v.replace(quote, quote * 2)}'" for k, v in self.settings.items()]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# PostgresCluster\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the server and block until it accepts connections (crash recovery included)."""
        wait = str(TIMEOUT - 10)
        self._run("pg_ctl", "start", "-w", "-t", wait, "-D", str(self.data), "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m smart|fast|immediate; "immediate" skips the shutdown checkpoint,
        so the next start runs crash recovery, as after a crash."""
        self._run("pg_ctl", "stop", "-w", "-t", str(TIMEOUT - 10), "-D", str(self.data), "-m", mode)

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def cleanup(self) -> None:
        """Stop the server if running, keep its log in base_dir, remove the rest. Never raises."""
        if (self.data / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                with contextlib.suppress(Exception):
                    self.stop(mode)
                    break
        with contextlib.suppress(Exception):
            shutil.copyfile(self.log, self.base_dir / "postgres.log")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
