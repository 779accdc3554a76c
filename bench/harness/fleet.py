"""A fleet: replicas that share only PostgreSQL and an S3 server, each in a network namespace of its
own with its own disk (instance directory, node cache), reaching both through proxies on the host that
a test can cut."""
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.harness import netns, server
from bench.harness.s3_server import S3Server
from bench.harness.tcp_proxy import CuttableProxy

BUCKET = "fleet"


@dataclass
class Replica:
    """One replica: the running gunicorn, where it runs, and its proxies to the database and the store."""

    live: server.LiveRegistry
    place: netns.Place
    root: Path
    database_proxy: CuttableProxy
    store_proxy: CuttableProxy

    @property
    def cache_dir(self) -> Path:
        """Its node cache."""
        return self.root / "artifact-cache"


@dataclass
class Fleet:
    """Replicas of one registry on ``database_url`` and ``s3``; :meth:`add` starts another."""

    database_url: str
    s3: S3Server
    root: Path
    admin_token: str
    workers: int = 2
    extra_env: dict = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    _places: int = 0
    _stack: ExitStack = field(default_factory=ExitStack)

    def host_env(self) -> dict:
        """The service's environment for this host (the flask CLI: gc, verify, migrations)."""
        return server.service_env(self.database_url, "", self.admin_token, **self.s3.env(BUCKET),
                                  INSTANCE_DIR=self.root / "host", **self.extra_env)

    def add(self, wait: bool = True, root: Path | None = None) -> Replica:
        """Start one more replica in a place of its own (or again on ``root``: its disk as it was left)."""
        self._places += 1
        index = self._places
        root = root or self.root / f"replica-{index}"
        root.mkdir(parents=True, exist_ok=True)
        place = self._stack.enter_context(netns.isolated(index))
        database = make_url(self.database_url)
        database_proxy = self._stack.enter_context(
            CuttableProxy((database.host or "127.0.0.1", database.port or 5432), host=place.host_address))
        store_proxy = self._stack.enter_context(
            CuttableProxy((self.s3.host, self.s3.ports["s3"]), host=place.host_address))
        database_url = database.set(host=place.host_address, port=database_proxy.port).render_as_string(
            hide_password=False)
        env = server.service_env(
            database_url, "", self.admin_token,
            **{**self.s3.env(BUCKET), "AWS_ENDPOINT_URL": f"http://{place.host_address}:{store_proxy.port}"},
            INSTANCE_DIR=root, ARTIFACT_CACHE_DIR=root / "artifact-cache", **self.extra_env,
        )
        live = server.launch(env, root, workers=self.workers, place=place)
        self._stack.callback(server.stop_all, [live])
        replica = Replica(live, place, root, database_proxy, store_proxy)
        self.replicas.append(replica)
        if wait:
            server.wait_serving(live)
        return replica

    def close(self) -> None:
        """Stop every replica and take down their places and proxies."""
        self._stack.close()


@contextmanager
def running(database_url: str, s3: S3Server, root: Path, admin_token: str, count: int, **kwargs) -> Iterator[Fleet]:
    """``count`` replicas started side by side on a migrated database and a bucket made for them."""
    fleet = Fleet(database_url, s3, root, admin_token, **kwargs)
    s3.create_bucket(BUCKET)
    server.migrate(fleet.host_env())
    try:
        for _ in range(count):
            fleet.add(wait=False)
        for replica in fleet.replicas:
            server.wait_serving(replica.live)
        yield fleet
    finally:
        fleet.close()
