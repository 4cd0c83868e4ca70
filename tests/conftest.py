import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_weight_cache(tmp_path_factory):
    """Tests convert the offline weights into their own cache, never the user's."""
    previous = os.environ.get("MVR3D_CACHE")
    os.environ["MVR3D_CACHE"] = str(tmp_path_factory.mktemp("mvr3d_cache"))
    yield
    if previous is None:
        os.environ.pop("MVR3D_CACHE", None)
    else:
        os.environ["MVR3D_CACHE"] = previous
