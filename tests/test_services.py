"""The service fixtures (tests/services.py) start real processes that answer, and clean up after themselves."""

# ruff: noqa: F811 - the fixtures are imported, then requested by name
from __future__ import annotations

import psycopg

from tests.services import (  # noqa: F401 - fixtures are requested by name
    backend,
    create_database,
    drop_database,
    fresh_postgres_db,
    postgres_url,
    psycopg_dsn,
    s3_client,
    s3_env,
    s3_server,
    start_postgres,
)


def test_postgres_cluster_answers_queries(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:") and postgres_url.endswith("/postgres")
    with psycopg.connect(psycopg_dsn(postgres_url)) as connection:
        (version,) = connection.execute("SHOW server_version_num").fetchone()
        (encoding,) = connection.execute("SHOW server_encoding").fetchone()
        (fsync,) = connection.execute("SHOW fsync").fetchone()
    assert int(version) >= 150000 and encoding == "UTF8" and fsync == "off"


def test_fresh_postgres_db_fixture(fresh_postgres_db, postgres_url):
    assert fresh_postgres_db != postgres_url
    with psycopg.connect(psycopg_dsn(fresh_postgres_db)) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0].startswith("tejas_")


def test_fresh_database_is_empty_and_writable_and_dropped_after(postgres_url):
    url = create_database(postgres_url)
    name = url.rsplit("/", 1)[1]
    assert name.startswith("tejas_") and url.startswith(postgres_url.rsplit("/", 1)[0] + "/")
    with psycopg.connect(psycopg_dsn(url)) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        assert tables == 0
        connection.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        connection.execute("INSERT INTO t VALUES (1, 'ünïcode ✓')")
        assert connection.execute("SELECT v FROM t").fetchone()[0] == "ünïcode ✓"
        # a session still open when the test ends does not stop the drop (WITH (FORCE))
        held = psycopg.connect(psycopg_dsn(url))
    try:
        drop_database(url)
    finally:
        held.close()
    with psycopg.connect(psycopg_dsn(postgres_url)) as connection:
        assert connection.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


def test_a_cluster_stops_and_leaves_nothing_behind():
    cluster = start_postgres()
    root, url = cluster.root, cluster.url
    with psycopg.connect(psycopg_dsn(url)) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    cluster.stop()
    assert not root.exists()
    try:
        psycopg.connect(psycopg_dsn(url), connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("the cluster still answers after stop()")


def test_s3_put_and_get_through_moto(s3_server):
    env = s3_env(s3_server)
    assert env["TEJAS_BLOB_STORE"] == "s3" and env["TEJAS_S3_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["TEJAS_S3_BUCKET"] != s3_server["TEJAS_S3_BUCKET"], "each s3_env call names a new bucket"
    client = s3_client(env)
    client.create_bucket(Bucket=env["TEJAS_S3_BUCKET"])
    body = bytes(range(256)) * 17
    client.put_object(Bucket=env["TEJAS_S3_BUCKET"], Key="blobs/ab/cd", Body=body)
    got = client.get_object(Bucket=env["TEJAS_S3_BUCKET"], Key="blobs/ab/cd")["Body"].read()
    assert got == body
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert env["TEJAS_S3_BUCKET"] in names


def test_backend_env(backend, request):
    if request.node.callspec.params["backend"] == "embedded":
        assert backend == {}
        return
    assert set(backend) >= {"TEJAS_DATABASE_URL", "TEJAS_BLOB_STORE", "TEJAS_S3_ENDPOINT_URL", "TEJAS_S3_BUCKET"}
    with psycopg.connect(psycopg_dsn(backend["TEJAS_DATABASE_URL"])) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0].startswith("tejas_")
    client = s3_client(backend)
    client.create_bucket(Bucket=backend["TEJAS_S3_BUCKET"])
    client.put_object(Bucket=backend["TEJAS_S3_BUCKET"], Key="k", Body=b"v")
    assert client.get_object(Bucket=backend["TEJAS_S3_BUCKET"], Key="k")["Body"].read() == b"v"
