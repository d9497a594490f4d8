#!/usr/bin/env python3
"""Find or start the PostgreSQL and Redis servers that tests and `make backup` need.

    local_services.py postgres [--dir DIR]   print a server URL (database `postgres`)
    local_services.py redis [--dir DIR]      print a Redis URL
    local_services.py stop --dir DIR         stop what was started in DIR

A server already answering on the usual local port is used as it is. Otherwise a throwaway
PostgreSQL cluster (initdb/pg_ctl) or redis-server is started on a free port in DIR; a missing
program is named in one line with the package that provides it. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_PG = ("127.0.0.1", 5432)
DEFAULT_REDIS = ("127.0.0.1", 6379)


class ServiceError(RuntimeError):
    pass


def _throwaway_only() -> bool:
    """BP_THROWAWAY_SERVICES=1 ignores running servers: how a fresh machine behaves."""
    return os.environ.get("BP_THROWAWAY_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
        found = candidates[0] if candidates else None
    if not found:
        raise ServiceError(f"{name} is not installed: install the Debian package {package}")
    return found


def postgres_answers(host: str, port: int, user: str = "postgres") -> bool:
    isready = shutil.which("pg_isready")
    if isready is None:
        return False
    done = subprocess.run([isready, "-q", "-h", host, "-p", str(port), "-U", user, "-t", "3"])
    if done.returncode != 0:
        return False
    probe = subprocess.run(
        [_tool("psql", "postgresql-client"), "-XAtq", "-h", host, "-p", str(port), "-U", user,
         "-d", "postgres", "-c", "select 1"], capture_output=True, text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
    )
    return probe.returncode == 0


def _as_postgres_user() -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` account."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"]


def start_postgres(data_root: Path, password: str | None = None) -> str:
    """A cluster in data_root on a free port; with a password, TCP logins need it (scram)."""
    data_root.mkdir(parents=True, exist_ok=True)
    pgdata = data_root / "pgdata"
    port_file = data_root / "pg.port"
    wrap = _as_postgres_user()
    if os.geteuid() == 0:
        shutil.chown(data_root, "postgres")
        data_root.chmod(0o700)
    pg_ctl = _tool("pg_ctl", "postgresql")
    if not (pgdata / "PG_VERSION").exists():
        initdb = _tool("initdb", "postgresql")
        auth = ["--auth=trust"]
        if password is not None:
            pwfile = data_root / "pwfile"
            pwfile.write_text(password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run(wrap + [initdb, "-D", str(pgdata), "-U", "postgres", *auth,
                               "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, stdout=subprocess.DEVNULL)
        if password is not None:
            pwfile.unlink()
    status = subprocess.run(wrap + [pg_ctl, "-D", str(pgdata), "status"],
                            capture_output=True)
    if status.returncode == 0 and port_file.exists():
        port = int(port_file.read_text())
    else:
        port = free_port()
        opts = f"-p {port} -k {data_root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(wrap + [pg_ctl, "-D", str(pgdata), "-o", opts,
                               "-l", str(data_root / "postgres.log"), "-w", "-t", "60", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        port_file.write_text(str(port))
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def find_or_start_postgres(data_root: Path) -> str:
    env_url = os.environ.get("TEST_PG_URL")
    if env_url:
        return env_url
    if not _throwaway_only() and postgres_answers(*DEFAULT_PG):
        return f"postgresql://postgres@{DEFAULT_PG[0]}:{DEFAULT_PG[1]}/postgres"
    return start_postgres(data_root)


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def find_or_start_redis(data_root: Path) -> str:
    env_url = os.environ.get("TEST_REDIS_URL")
    if env_url:
        return env_url
    if not _throwaway_only() and redis_answers(*DEFAULT_REDIS):
        return f"redis://{DEFAULT_REDIS[0]}:{DEFAULT_REDIS[1]}/0"
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceError("redis-server is not installed: install the Debian package "
                           "redis-server")
    data_root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    subprocess.run([server, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
                    "--save", "", "--appendonly", "no", "--dir", str(data_root),
                    "--pidfile", str(data_root / "redis.pid"),
                    "--logfile", str(data_root / "redis.log")], check=True)
    for _ in range(100):
        if redis_answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise ServiceError(f"redis-server did not start (see {data_root / 'redis.log'})")


def stop(data_root: Path) -> None:
    pgdata = data_root / "pgdata"
    if (pgdata / "PG_VERSION").exists():
        subprocess.run(_as_postgres_user() + [_tool("pg_ctl", "postgresql"), "-D", str(pgdata),
                                              "-m", "immediate", "stop"],
                       capture_output=True)
    pidfile = data_root / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["postgres", "redis", "stop"])
    parser.add_argument("--dir", type=Path, default=Path(".local/services"))
    args = parser.parse_args()
    try:
        if args.what == "postgres":
            print(find_or_start_postgres(args.dir.absolute()))
        elif args.what == "redis":
            print(find_or_start_redis(args.dir.absolute()))
        else:
            stop(args.dir.absolute())
    except (ServiceError, subprocess.CalledProcessError) as exc:
        print(f"local_services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
