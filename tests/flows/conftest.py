import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect database for the session's sweeps, outside the user's ~/.prefect."""
    return tmp_path_factory.mktemp("prefect-home")
