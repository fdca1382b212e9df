"""postgres.replica_dsn against a real streaming replica (pg_basebackup -R of a real primary, both
started by the test): documents are read from the replica; when the replica lags behind a change
the daemon heard announced, the primary has the last word."""
from fdtest import PostgresReplica, PostgresServer, manifest
from test_manifest_store import DOCUMENT_QUERY, Store, store_config, upstream_of, wait_for


def test_reads_go_to_the_replica_and_a_change_it_lacks_is_read_from_the_primary(frontdoor, upstreams, tmp_path):
    v1, v2 = upstreams("v1"), upstreams("v2")
    primary = PostgresServer().start()
    replica = None
    try:
        store = Store(tmp_path, store_config(primary.dsn))  # the CLI writes to the primary
        store.put(manifest("shop", "cart", [v1]))
        replica = PostgresReplica(primary).start()
        current = "SELECT version FROM manifests WHERE project = 'shop'"
        assert wait_for(lambda: replica.sql(current) == "1", timeout=10), "the replica never caught up"

        cfg = store_config(primary.dsn)
        cfg["postgres"]["replica_dsn"] = replica.dsn
        fd = frontdoor(cfg)
        primary_reads = primary.count_in_log(DOCUMENT_QUERY)
        assert wait_for(lambda: upstream_of(fd.port, "/shop/cart/1") == (200, "v1"), timeout=5)
        assert replica.count_in_log(DOCUMENT_QUERY) >= 1, "the document was not read from the replica"
        assert primary.count_in_log(DOCUMENT_QUERY) == primary_reads, "the primary was read with nothing to catch up"

        # The replica stops replaying: a change committed (and announced) on the primary is not there.
        replica.pause_replay()
        store.put(manifest("shop", "cart", [v2]))
        assert primary.sql(current) == "2"
        assert wait_for(lambda: upstream_of(fd.port, "/shop/cart/1") == (200, "v2"), timeout=5), \
            "the daemon served the replica's stale version\n" + fd.logs()
        assert replica.sql(current) == "1", "the replica caught up: the test proved nothing"
        assert primary.count_in_log(DOCUMENT_QUERY) > primary_reads, "v2 did not come from the primary"
    finally:
        if replica is not None:
            replica.cleanup()
        primary.cleanup()
