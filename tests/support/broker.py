"""A real tansu broker for a test module, with every pipeline topic created."""
from __future__ import annotations

import pytest

from streams.local.broker import create_topics, start_tansu


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    child, bootstrap = start_tansu(tmp_path_factory.mktemp("tansu"))
    conf = {"bootstrap.servers": bootstrap}
    create_topics(conf, 8, 4)
    yield conf
    child.stop()
