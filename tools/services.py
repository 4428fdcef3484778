"""Start and stop the real servers that some tests need (never mocks), for CI and developers.

::

    python tools/services.py start --env .services.env   # then: . ./.services.env
    python tools/services.py stop --env .services.env

``start`` installs a server from Debian's packages when its binaries are missing, starts it on
127.0.0.1 on a free port with its data in a temporary directory, and writes ``export NAME=value``
lines to the ``--env`` file (and prints them). ``stop`` stops every server the env file names
and removes its data. ``--only NAME`` (repeatable) limits either command to some services.

``start`` first stops the servers that the env file already names (a second ``start`` replaces
them rather than leaking them), and rewrites the file after each server it starts, so that a
``stop`` (a CI trap) finds whatever did start even when a later one fails. A server that fails
part-way is stopped and its data removed by its own ``start``; what failed is one line on stderr,
never a traceback. Packages are installed with a temporary ``/usr/sbin/policy-rc.d`` that
forbids starting services, so Debian's own PostgreSQL and Redis are installed but not started.

Each service is one pair of functions (``start_<name>``/``stop_<name>``) registered in
``SERVICES``: a service's ``start`` returns the variables to export (its URL for the tests, and
whatever its ``stop`` needs to find it again). Its variables are named
``MODELPORT_TEST_<NAME>_*`` and ``MODELPORT_SERVICE_<NAME>_*`` (``<NAME>`` its key in
``SERVICES``, upper-cased): that is how ``start`` and ``stop`` tell which lines are whose. A
``start`` that fails stops what it had started itself (``stop`` copes with a partial env).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

Env = dict[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _warn(message: str) -> None:
    print(f"services: {message}", file=sys.stderr)


def _run(argv: Sequence[str], *, user: str | None = None, check: bool = True) -> str:
    """Run ``argv`` (as ``user`` when we are root and one is given); its stdout. A failure is a
    ``SystemExit`` saying what failed when ``check``, else a warning on stderr."""
    if user and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        message = f"cannot run {argv[0]}: {exc.strerror or exc}"
        if check:
            raise SystemExit(f"services: {message}") from None
        _warn(message)
        return ""
    if check and done.returncode:
        raise SystemExit(
            f"services: {shlex.join(argv)} failed (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}".rstrip()
        )
    return done.stdout


def _log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the log at ``path`` (it is about to be removed), or ""."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return (
        f"\n--- the end of {path.name}:\n" + "\n".join(text.splitlines()[-lines:]) if text else ""
    )


def _kill_pidfile(pidfile: Path, first: signal.Signals) -> None:
    """Send ``first`` to the server whose pid is in ``pidfile``, wait up to 10 s for it to exit,
    then SIGKILL it. Only if it works in ``pidfile``'s directory (both servers chdir to their
    data): a stale pid file's pid may be another process's now."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        cwd: Path | None = Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except FileNotFoundError:
        cwd = None  # no /proc to ask, or no such process
    except OSError:
        return  # not ours to look at, so not ours to kill
    if cwd is not None and cwd != pidfile.parent.resolve():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, first)
        for _ in range(200):
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


_apt_updated = False


@contextlib.contextmanager
def _no_service_starts() -> Iterator[None]:
    """Forbid package scripts to start services (Debian's policy-rc.d protocol), so that
    installing a server does not also start (and leave running) the packaged one."""
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    try:
        if not policy.exists():
            policy.write_text(
                "#!/bin/sh\n# tools/services.py: installing, start nothing\nexit 101\n"
            )
            policy.chmod(0o755)
            created = True
        yield
    finally:
        if created:
            policy.unlink(missing_ok=True)


def _apt_install(package: str) -> None:
    global _apt_updated  # noqa: PLW0603 -- one apt-get update per run, however many installs
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            f"services: {package} is not installed; install it (apt-get install {package}) "
            "or run this script as root on Debian/Ubuntu so it can"
        )
    _warn(f"installing {package} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # a fresh VM's unattended-upgrades may hold it
    steps = [] if _apt_updated else [["apt-get", *lock, "update", "-q"]]
    steps.append(["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", package])
    try:
        with _no_service_starts():
            for argv in steps:
                subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
                _apt_updated = _apt_updated or "update" in argv
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"services: {shlex.join(exc.cmd)} failed (exit {exc.returncode}; its errors are "
            f"above); fix that, or install {package} yourself, and run this again"
        ) from None
    except OSError as exc:
        raise SystemExit(
            f"services: cannot install {package} ({exc}); install it yourself and run this again"
        ) from None


def _vars_of(name: str, env: Mapping[str, str]) -> list[str]:
    """The variables in ``env`` that belong to service ``name`` (see the module's docstring)."""
    prefixes = (f"MODELPORT_TEST_{name.upper()}_", f"MODELPORT_SERVICE_{name.upper()}_")
    return [var for var in env if var.startswith(prefixes)]


# --- PostgreSQL ---------------------------------------------------------------------------------

#: What start_postgres runs; postgresql-client-NN alone makes a bin directory without the server.
_POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")


def _version(bin_dir: str) -> tuple[int, ...]:
    return tuple(int(part) for part in Path(bin_dir).parent.name.split(".") if part.isdigit())


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian keeps it off the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        found.append(str(Path(initdb).resolve().parent))
    for bin_dir in map(Path, found):
        if all(os.access(bin_dir / program, os.X_OK) for program in _POSTGRES_PROGRAMS):
            return bin_dir
    return None


def start_postgres() -> Env:
    """A PostgreSQL on 127.0.0.1, trusting local connections, with a ``modelport`` database."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _apt_install("postgresql")
        bin_dir = _postgres_bin()
        if bin_dir is None:
            raise SystemExit(
                "services: postgresql was installed but no directory has all of "
                f"{', '.join(_POSTGRES_PROGRAMS)}; install the PostgreSQL server yourself"
            )
    user = "postgres" if os.geteuid() == 0 else None  # postgres refuses to run as root
    base = Path(tempfile.mkdtemp(prefix="modelport-postgres-"))
    data, sockets = base / "data", base / "run"
    env: Env = {
        # What a test needs to stop and start the server (a restart mid-run) and what stop needs.
        "MODELPORT_SERVICE_POSTGRES_CTL": str(bin_dir / "pg_ctl"),
        "MODELPORT_SERVICE_POSTGRES_DATA": str(data),
        "MODELPORT_SERVICE_POSTGRES_USER": user or "",
        "MODELPORT_SERVICE_POSTGRES_BASE": str(base),
    }
    try:
        sockets.mkdir()
        if user:
            try:
                shutil.chown(base, user)
                shutil.chown(sockets, user)
            except LookupError:
                raise SystemExit(
                    f"services: there is no {user} user to run PostgreSQL as (root may not); "
                    "install Debian's postgresql package, or run this as another user"
                ) from None
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-instructions"],
            user=user,
        )  # fmt: skip
        port = _free_port()
        # In the server's own config, so that a test restarting it (pg_ctl start) gets them too;
        # the last setting wins, so these override initdb's (TCP on 127.0.0.1 only).
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
    except BaseException as exc:
        log = _log_tail(base / "server.log")
        if log and not isinstance(exc, KeyboardInterrupt):
            print(log.lstrip("\n"), file=sys.stderr)
        with contextlib.suppress(Exception):
            stop_postgres(env)
        raise
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/modelport"
    return {"MODELPORT_TEST_POSTGRES_URL": url, **env}


def stop_postgres(env: Mapping[str, str]) -> None:
    base = env.get("MODELPORT_SERVICE_POSTGRES_BASE")
    if not base:
        return
    ctl = env.get("MODELPORT_SERVICE_POSTGRES_CTL")
    data = env.get("MODELPORT_SERVICE_POSTGRES_DATA")
    if ctl and data and (Path(data) / "postmaster.pid").is_file():
        user = env.get("MODELPORT_SERVICE_POSTGRES_USER") or None
        _run([ctl, "-D", data, "-m", "immediate", "-w", "stop"], user=user, check=False)
        # Should pg_ctl have failed (or be gone), stop the server the way it would have.
        _kill_pidfile(Path(data) / "postmaster.pid", signal.SIGQUIT)
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
    On failure it stops the server (if it is running) and raises ``SystemExit``.
    """
    try:
        _run(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base),
             "--save", "", "--appendonly", "no", "--daemonize", "yes",
             "--pidfile", str(base / "redis.pid"), "--logfile", str(base / "redis.log")],
        )  # fmt: skip
        for _ in range(200):
            if _redis_ready(port):
                return
            time.sleep(0.05)
        raise SystemExit(
            f"services: redis-server did not answer on port {port} within 10 s"
            + _log_tail(base / "redis.log")
        )
    except BaseException:
        with contextlib.suppress(Exception):
            stop_redis_server(base)
        raise


def stop_redis_server(base: Path) -> None:
    """Stop the server whose pid file is in ``base`` and wait until it has exited."""
    pidfile = base / "redis.pid"
    _kill_pidfile(pidfile, signal.SIGTERM)
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
    env: Env = {
        "MODELPORT_SERVICE_REDIS_SERVER": server,  # for tests that start a server of their own
        "MODELPORT_SERVICE_REDIS_BASE": str(base),
    }
    try:
        port = _free_port()
        start_redis_server(port, base, server)
    except BaseException:
        with contextlib.suppress(Exception):
            stop_redis(env)
        raise
    return {"MODELPORT_TEST_REDIS_URL": f"redis://127.0.0.1:{port}/0", **env}


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


def _env_text(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _save_env(path: Path | None, env: Mapping[str, str]) -> None:
    if path is not None:
        path.write_text(_env_text(env))


def _stop(name: str, env: Env) -> bool:
    """Stop service ``name`` as ``env`` describes it and drop its variables from ``env``;
    whether it went without a hitch (a failure is a warning: stop the others all the same)."""
    try:
        SERVICES[name][1](env)
    except (Exception, SystemExit) as exc:
        _warn(f"stopping {name} failed: {exc}")
        return False
    for var in _vars_of(name, env):
        del env[var]
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_IGN)  # let the clean-up finish
    raise SystemExit(f"services: stopped by signal {signum}")


def _start(names: Sequence[str], path: Path | None) -> None:
    env = _read_env(path) if path else {}
    for name in names:  # what an earlier start left running: replace it, do not leak it
        if _vars_of(name, env):
            _warn(f"stopping the {name} server that {path} names before starting a new one")
            if not _stop(name, env):
                raise SystemExit(
                    f"services: cannot stop the {name} server that {path} names; stop it "
                    "(or delete the file if it is long gone) and run this again"
                )
            _save_env(path, env)
    started: list[str] = []
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # a killed start cleans up too
    try:
        for name in names:
            env.update(SERVICES[name][0]())
            started.append(name)
            _save_env(path, env)  # now, so that a stop (the CI trap) finds it whatever follows
    except BaseException:
        for name in reversed(started):  # stop what did start
            _stop(name, env)
        with contextlib.suppress(OSError):
            _save_env(path, env)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(_env_text(env), end="")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--env", type=Path, help="the file of export lines (written by start)")
    parser.add_argument("--only", action="append", choices=sorted(SERVICES), help="a service")
    args = parser.parse_args(argv)
    names = args.only or list(SERVICES)
    try:
        if args.command == "start":
            _start(names, args.env)
            return 0
        file_env = _read_env(args.env) if args.env else {}
        env = {**os.environ, **file_env}
        ok = True
        for name in names:
            ok = _stop(name, env) and ok
        if args.env and args.env.is_file():
            left = {var: value for var, value in file_env.items() if var in env}
            if left:
                _save_env(args.env, left)  # the services that --only left running
            else:
                args.env.unlink()
        return 0 if ok else 1
    except KeyboardInterrupt:
        _warn("interrupted")
        return 130
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"services: {args.command} failed: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
