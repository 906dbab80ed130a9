"""The sweep store on PostgreSQL: the same contract as on SQLite (tests/unit/lab/test_store.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import ENV_URL, SchemaPerDataDir
from tests.unit.lab.test_store import exercise_store

pytestmark = pytest.mark.skipif(
    not os.environ.get(ENV_URL), reason=f"needs {ENV_URL} (see tests/support/postgres.py)"
)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    schemas = SchemaPerDataDir(os.environ[ENV_URL])
    try:
        yield schemas.url_for(tmp_path)
    finally:
        schemas.drop_all()


def test_sweeps_and_points_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    exercise_store(pg_url, tmp_path)
