"""Store errors: one family; version rules in one place; ES's size mismatch by its cause."""

from __future__ import annotations

import pytest

from memstream.sinks import StoreError, StoreQueryError, StoreVersionError, StoreWriteError
from memstream.sinks.base import VersionState, check_drop, check_exists, check_mark
from memstream.sinks.elasticsearch import _is_dims_error

#: What Elasticsearch 8 (and noida-db) answer to a knn query vector of another size.
DIMS = "The query vector has a different number of dimensions [3] than the document vectors [4]."
DIMS_ERROR = {
    "root_cause": [{"type": "query_shard_exception", "reason": f"failed to create query: {DIMS}"}],
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "caused_by": {
        "type": "query_shard_exception",
        "reason": f"failed to create query: {DIMS}",
        "caused_by": {"type": "illegal_argument_exception", "reason": DIMS},
    },
}


def test_every_store_error_is_a_store_error_and_not_a_runtime_error() -> None:
    for cls in (StoreVersionError, StoreWriteError, StoreQueryError):
        assert issubclass(cls, StoreError) and not issubclass(cls, RuntimeError)


def test_version_rules() -> None:
    check_mark(VersionState.retired)
    with pytest.raises(StoreVersionError, match="switch_to"):
        check_mark(VersionState.live)
    check_exists(3, VersionState.building)
    for gone in (None, VersionState.dropped):
        with pytest.raises(StoreVersionError, match="does not exist"):
            check_exists(3, gone)
        with pytest.raises(StoreVersionError, match="does not exist"):
            check_drop(3, gone)
    check_drop(3, VersionState.retired)
    check_drop(3, VersionState.building)
    with pytest.raises(StoreVersionError, match="is live"):
        check_drop(3, VersionState.live)


def test_a_dimension_mismatch_is_told_by_its_cause() -> None:
    assert _is_dims_error(DIMS_ERROR)
    assert _is_dims_error({"type": "illegal_argument_exception", "reason": DIMS})
    # Mentions of "dim" elsewhere are other errors: they must not silence vector recall.
    unmapped = {"type": "query_shard_exception", "reason": "No mapping found for [dimension]"}
    assert not _is_dims_error(unmapped)
    assert not _is_dims_error(
        {"type": "index_not_found_exception", "reason": "no such index [dims]"}
    )
    assert not _is_dims_error("different number of dimensions")  # not an error object
    assert not _is_dims_error(None)
