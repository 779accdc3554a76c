"""The container's entrypoint: check what a start needs, bring the database to the head revision, then
become gunicorn. ``python -m deploy.entrypoint`` is the image's ENTRYPOINT; it runs before anything
reads the configuration, in this order:

1. each secret given as a file (``ADMIN_TOKEN_FILE``, ``SECRET_KEY_FILE``, ``DATABASE_URL_FILE``,
   ``AWS_SECRET_ACCESS_KEY_FILE``, ``OIDC_CLIENT_SECRET_FILE``: Docker and Kubernetes secrets) must be readable and not empty; it is
   read by config.py in every process that needs it, never put in the environment (where gunicorn, its
   workers and anything they start would inherit it);
2. ``ARTIFACT_ROOT`` must name a store this release can use;
3. the database must answer (within ``DATABASE_WAIT_SECONDS``, default 0: a fleet whose database starts
   beside it waits for it, also when it goes away again during the migration: a name that does not
   resolve yet, a refused or dropped connection), and is migrated one replica at a time (on PostgreSQL
   under an advisory lock: the first to start migrates, the others wait and then find the schema at head);
4. without ``ADMIN_TOKEN`` (or its file), the token kept in ``INSTANCE_DIR/admin_token`` is used: made and
   printed once, on the first start, and named to the server as ``ADMIN_TOKEN_FILE``;
5. gunicorn replaces this process, with the package's settings (``deploy/gunicorn_conf.py``), so that it is the one the
   container's signals reach (SIGTERM is a graceful stop); or the command given
   after the image's name does, with the same preparation (``docker run … IMAGE flask --app wsgi …``).

Whatever stops a start is one line on stderr and exit status 1, before anything listens: never a
half-started server.
"""
import fcntl
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

SECRETS = ("ADMIN_TOKEN", "SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "OIDC_CLIENT_SECRET")
# pg_advisory_lock's key for migrations: any fixed 64-bit number, the same in every replica.
MIGRATION_LOCK = 0x6D725F6D69677261
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
RETRY_SECONDS = 1.0
# gunicorn's settings and hooks, from the package wherever it is installed (gunicorn.conf.py in a checkout).
GUNICORN_SETTINGS = "python:deploy.gunicorn_conf"


class CannotStart(Exception):
    """Why the service cannot start, in one line that says what to fix."""


def main(command: list[str] | None = None, *, read_again: str = "docker exec CONTAINER cat",
         load: tuple[str, str] | None = None) -> None:
    """Check, prepare, then exec gunicorn (or ``command``, by default the arguments); exit 1 with one line on
    stderr when the start is impossible. ``read_again`` is how to read a kept admin token again (shown with it).
    ``load`` (a directory and a model's name): first register its model file as the name's ``production``
    (``flask models load``; KServe's runtime, deploy/kubernetes/kserve/)."""
    try:
        check_secret_files(os.environ)
        from config import BASE_DIR, settings  # only now: the secret files are checked

        given = settings()
        check_artifact_root(given.storage.artifact_root)
        migrate(given.storage.database_url, BASE_DIR / "migrations", wait_seconds=given.storage.database_wait_seconds)
        if not given.access.admin_token:
            kept_admin_token(given.storage.instance_dir, read_again)
            os.environ["ADMIN_TOKEN_FILE"] = str(given.storage.instance_dir / "admin_token")
        if load:
            load_model(*load)
    except CannotStart as exc:
        sys.exit(str(exc))
    sys.stdout.flush()  # what was printed must not stay in a buffer that exec throws away
    command = list(sys.argv[1:] if command is None else command) or [
        sys.executable, "-m", "gunicorn", "-c", GUNICORN_SETTINGS, "wsgi:app"]
    os.execvp(command[0], command)


def load_model(directory: str, name: str) -> None:
    """Register the model file of ``directory`` as ``name``'s production (``flask models load``, in a process
    of its own: the server's processes start with nothing of it)."""
    loaded = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "models", "load", directory, "--name", name],
                            capture_output=True, text=True, check=False)
    if loaded.returncode:
        said = loaded.stderr.strip().splitlines() or [f"flask models load exited {loaded.returncode}"]
        raise CannotStart(f"cannot serve {directory} as {name!r}: {said[-1]}")
    print(loaded.stdout.strip())


def check_secret_files(environ: MutableMapping[str, str]) -> None:
    """Stop unless each secret given as ``NAME_FILE`` is a readable text file with a value (less its final
    newline) and ``NAME`` is not set too. The value stays in its file: config.py reads it there."""
    for name in SECRETS:
        path = environ.get(f"{name}_FILE")
        if not path:
            continue
        if environ.get(name):
            raise CannotStart(f"{name} and {name}_FILE are both set: set one of them")
        try:
            value = Path(path).read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise CannotStart(f"{name}_FILE={path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        if not value:
            raise CannotStart(f"{name}_FILE={path} is empty")


def check_artifact_root(root: str) -> None:
    """Stop when ``root`` names no store this release can use (the app's own check, without reaching it)."""
    from registry.artifacts.store_root import UnknownStore, check_root

    try:
        check_root(str(root))
    except UnknownStore as exc:
        raise CannotStart(str(exc)) from None


def kept_admin_token(instance_dir: Path, read_again: str = "docker exec CONTAINER cat") -> str:
    """The admin token kept in ``instance_dir/admin_token``; made there, and printed, on the first start only,
    with the command that reads it again (``read_again`` and its path)."""
    path = instance_dir / "admin_token"
    read_again = f"{read_again} {path}"
    try:
        instance_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"Admin token: the one kept in {path} (read it with: {read_again})")
        return path.read_text().strip()
    except OSError as exc:
        raise CannotStart(f"INSTANCE_DIR={instance_dir}: cannot keep the admin token there ({exc.strerror}); "
                          "mount a volume the container's user may write, or set ADMIN_TOKEN_FILE") from None
    token = "mr_" + secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    print(f"Admin token: {token}  (made now and kept in {path}; read it again with: {read_again})")
    return token


def migrate(url: str, scripts: Path, wait_seconds: float = 0) -> None:
    """Bring the database at ``url`` to the head of ``scripts``, one replica at a time; stop when it does not
    answer within ``wait_seconds``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CannotStart("DATABASE_URL is not a database URL: postgresql+psycopg://USER:PASSWORD@HOST/NAME "
                          "or sqlite:////PATH") from None
    shown = parsed.render_as_string(hide_password=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            _migrate_once(parsed, url, scripts)
            return
        except _Unreachable as unreachable:
            exc = unreachable.__cause__
            if time.monotonic() + RETRY_SECONDS > deadline:
                waited = f" after {wait_seconds:g} s (DATABASE_WAIT_SECONDS)" if wait_seconds else ""
                raise CannotStart(f"DATABASE_URL={shown}: the database does not answer{waited} ({_one_line(exc)})") from None
            print(f"waiting for the database at {shown} ({_one_line(exc)})", flush=True)
            time.sleep(RETRY_SECONDS)
        except SQLAlchemyError as exc:
            raise CannotStart(f"DATABASE_URL={shown}: migrating failed ({_one_line(exc)})") from None


class _Unreachable(Exception):
    """The database could not be reached, or dropped the connection (its cause says how): worth another try."""


def _migrate_once(parsed, url: str, scripts: Path) -> None:
    """Connect, then migrate unless at head; _Unreachable when the database was not there at some point
    (a name that did not resolve yet, a refused or dropped connection), as a fleet starting beside its
    database meets it: the migration's own connection may fail after the first one answered."""
    from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

    try:
        connection = _connect(parsed)
    except (SQLAlchemyError, OSError) as exc:
        raise _Unreachable() from exc
    try:
        with connection, _one_replica_at_a_time(connection):
            if not _at_head(connection, scripts):
                _upgrade(url, scripts)
    except (OperationalError, InterfaceError) as exc:
        if parsed.get_backend_name() == "sqlite":
            raise  # SQLite says OperationalError of a statement's own failure too (a table that exists already)
        raise _Unreachable() from exc  # a migration's own failure on a server is a ProgrammingError or the like
    except OSError as exc:
        raise _Unreachable() from exc


def _connect(url):
    """An open connection to ``url`` (outside any pool: this process soon becomes gunicorn)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args = {}
    if url.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    elif url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, poolclass=NullPool, connect_args=connect_args).connect()


@contextmanager
def _one_replica_at_a_time(connection) -> Iterator[None]:
    """Replicas that start together migrate in turn: on PostgreSQL under an advisory lock (it belongs to the
    session and holds until the connection closes), on SQLite under a lock on the database's directory
    (containers that share the volume share the lock)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy import func, select

        connection.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
        connection.commit()
        yield
        return
    directory = os.open(Path(connection.engine.url.database).resolve().parent, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)  # not the database file: closing it would drop SQLite's own locks
        yield
    finally:
        os.close(directory)


def _at_head(connection, scripts: Path) -> bool:
    """Whether the database's revision is the scripts' head already (the usual restart: no app to build)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = set(MigrationContext.configure(connection).get_current_heads())
    connection.rollback()  # no read transaction may stay open while the upgrade writes (SQLite would wait on it)
    return current == set(ScriptDirectory(str(scripts)).get_heads())


def _upgrade(url: str, scripts: Path) -> None:
    """``flask db upgrade`` of the database at ``url`` to the head of ``scripts``, in this process, on a
    Flask app that holds only the database (the service's app would import scikit-learn and every route
    here, and gunicorn imports them again: seconds of a first start)."""
    from flask import Flask
    from flask_migrate import upgrade

    from registry.db import attach_migrations, configure_sqlite, db

    app = Flask(__name__)  # not "migrations": a namespace package found both installed and in the working directory
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db.init_app(app)
    attach_migrations(app, str(scripts))
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine)
        upgrade()
        db.engine.dispose()


def _one_line(exc: Exception) -> str:
    """The database driver's own words for ``exc``, on one line."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


if __name__ == "__main__":
    main()
