from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "configs" / "example.toml"


@pytest.fixture
def example_config_text() -> str:
    return EXAMPLE_CONFIG.read_text()
