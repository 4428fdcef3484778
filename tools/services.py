"""Start and stop the real servers that some tests need (never mocks), for CI and developers.

::

    python tools/services.py start --env .services.env   # then: . ./.services.env
    python tools/services.py stop --env .services.env

``start`` installs a server from Debian's packages when its binaries are missing, starts it on
127.0.0.1 on a free port with its data in a temporary directory, and writes ``export NAME=value``
lines to the ``--env`` file (and prints them). ``stop`` stops every server the env file names
and removes its data. ``--only NAME`` (repeatable) limits either command to some services.

Each service is one pair of functions (``start_<name>``/``stop_<name>``) registered in
``SERVICES``: a service's ``start`` returns the variables to export (its URL for the tests, and
whatever its ``stop`` needs to find it again, by convention ``MODELPORT_SERVICE_<NAME>_*``).
Tests that need a service read its URL from the environment and skip, saying why, when it is
unset.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Env = dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: Sequence[str], *, user: str | None = None, check: bool = True) -> str:
    """Run ``argv`` (as ``user`` when we are root and one is given); its stdout."""
    if user and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise SystemExit(
            f"services: {shlex.join(argv)} failed (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


def _apt_install(package: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            f"services: {package} is not installed; install it (apt-get install {package}) "
            "or run this script as root on Debian/Ubuntu so it can"
        )
    print(f"services: installing {package} from Debian's packages", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps them off the PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0)
    )
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start_postgres() -> Env:
    """A PostgreSQL on 127.0.0.1, trusting local connections, with a ``modelport`` database."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _apt_install("postgresql")
        bin_dir = _postgres_bin()
        if bin_dir is None:
            raise SystemExit("services: postgresql was installed but initdb is not found")
    user = "postgres" if os.geteuid() == 0 else None  # postgres refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="modelport-postgres-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(sockets, user)
    _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "--encoding=UTF8", "--no-instructions"],
        user=user,
    )  # fmt: skip
    port = _free_port()
    # In the server's own config, so that a test restarting it (pg_ctl start) gets them too.
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\n"
            f"unix_socket_directories = '{sockets}'\nfsync = off\n"
        )
    _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
         "-t", "60", "start"],
        user=user,
    )  # fmt: skip
    _run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "modelport"],
        user=user,
    )  # fmt: skip
    return {
        "MODELPORT_TEST_POSTGRES_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/modelport",
        # What a test needs to stop and start the server (a restart mid-run) and what stop needs.
        "MODELPORT_SERVICE_POSTGRES_CTL": str(bin_dir / "pg_ctl"),
        "MODELPORT_SERVICE_POSTGRES_DATA": str(data),
        "MODELPORT_SERVICE_POSTGRES_USER": user or "",
        "MODELPORT_SERVICE_POSTGRES_BASE": str(base),
    }


def stop_postgres(env: Mapping[str, str]) -> None:
    base = env.get("MODELPORT_SERVICE_POSTGRES_BASE")
    if not base:
        return
    ctl = env.get("MODELPORT_SERVICE_POSTGRES_CTL")
    data = env.get("MODELPORT_SERVICE_POSTGRES_DATA")
    if ctl and data and Path(data).is_dir():
        user = env.get("MODELPORT_SERVICE_POSTGRES_USER") or None
        _run([ctl, "-D", data, "-m", "immediate", "-w", "stop"], user=user, check=False)
    shutil.rmtree(base, ignore_errors=True)


# --- Redis --------------------------------------------------------------------------------------


def _redis_ready(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(port: int, base: Path, server: str = "redis-server") -> None:
    """Start ``server`` on 127.0.0.1:``port``, in the background, its files in ``base``, with
    no persistence; return when it answers. Tests use it too, to restart a server of their own.
    """
    _run(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base),
         "--save", "", "--appendonly", "no", "--daemonize", "yes",
         "--pidfile", str(base / "redis.pid"), "--logfile", str(base / "redis.log")],
    )  # fmt: skip
    for _ in range(200):
        if _redis_ready(port):
            return
        time.sleep(0.05)
    raise SystemExit(f"services: redis-server did not answer on port {port} (see {base})")


def stop_redis_server(base: Path) -> None:
    """Stop the server whose pid file is in ``base`` and wait until it has exited."""
    pidfile = base / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def start_redis() -> Env:
    """A Redis on 127.0.0.1, with no persistence and its files in a temporary directory."""
    server = shutil.which("redis-server")
    if server is None:
        _apt_install("redis-server")
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("services: redis-server was installed but is not on the PATH")
    base = Path(tempfile.mkdtemp(prefix="modelport-redis-"))
    port = _free_port()
    start_redis_server(port, base, server)
    return {
        "MODELPORT_TEST_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "MODELPORT_SERVICE_REDIS_SERVER": server,  # for tests that start a server of their own
        "MODELPORT_SERVICE_REDIS_BASE": str(base),
    }


def stop_redis(env: Mapping[str, str]) -> None:
    base = env.get("MODELPORT_SERVICE_REDIS_BASE")
    if not base:
        return
    stop_redis_server(Path(base))
    shutil.rmtree(base, ignore_errors=True)


# --- the registry of services -------------------------------------------------------------------

#: name -> (start, stop). Add a service here with its own pair of functions.
SERVICES: dict[str, tuple[Callable[[], Env], Callable[[Mapping[str, str]], None]]] = {
    "postgres": (start_postgres, stop_postgres),
    "redis": (start_redis, stop_redis),
}


def _read_env(path: Path) -> Env:
    env: Env = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                name, _, value = line.removeprefix("export ").partition("=")
                parts = shlex.split(value)
                env[name] = parts[0] if parts else ""
    return env


def _write_env(path: Path | None, env: Mapping[str, str]) -> None:
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    print(text, end="")
    if path is not None:
        path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--env", type=Path, help="the file of export lines (written by start)")
    parser.add_argument("--only", action="append", choices=sorted(SERVICES), help="a service")
    args = parser.parse_args(argv)
    names = args.only or list(SERVICES)
    if args.command == "start":
        started: Env = _read_env(args.env) if args.env else {}
        try:
            for name in names:
                started.update(SERVICES[name][0]())
        except BaseException:
            for name in names:  # stop what did start
                SERVICES[name][1](started)
            raise
        _write_env(args.env, started)
        return 0
    env = {**os.environ, **(_read_env(args.env) if args.env else {})}
    for name in names:
        with contextlib.suppress(Exception):
            SERVICES[name][1](env)
    if args.env and args.env.is_file() and names == list(SERVICES):
        args.env.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
