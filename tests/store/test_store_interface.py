"""The SQLite store implements the whole `StateStore` protocol, and callers need nothing else."""

from __future__ import annotations

import inspect
from pathlib import Path

from cdnops.store.db import Store
from cdnops.store.interface import StateStore


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_sqlite_store_has_every_method_of_the_protocol_with_its_signature(tmp_path: Path) -> None:
    protocol = _public(StateStore)
    assert protocol <= _public(Store)
    for name in protocol - {"schema_version"}:
        want = inspect.signature(getattr(StateStore, name))
        got = inspect.signature(getattr(Store, name))
        assert list(got.parameters) == list(want.parameters), name
    store: StateStore = Store(tmp_path / "state.db")  # mypy checks the structural match
    store.close()


def test_the_protocol_covers_what_a_caller_could_use() -> None:
    # a public Store method missing from the protocol would tie its callers to SQLite
    extra = _public(Store) - _public(StateStore) - {"path", "transaction"}
    assert extra == set()
