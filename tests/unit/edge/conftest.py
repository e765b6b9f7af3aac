from collections.abc import Iterator

import pytest

from tests.unit.edge.edge_fakes import Rig, make_rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make_rig()
    yield r
    r.close()
