"""The docs say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from sdd.server.settings import Settings, settings_table

DOCS = Path(__file__).parents[2] / "docs"


def test_every_server_setting_is_documented_as_it_is() -> None:
    text = (DOCS / "configuration.md").read_text()
    table = re.search(r"<!-- settings-table.*?-->\n(.*?)<!-- /settings-table -->", text, re.S)
    assert table is not None
    assert table.group(1) == settings_table(), (
        "docs/configuration.md is out of date: run scripts/update-config-doc"
    )


def test_the_table_lists_every_setting() -> None:
    table = settings_table()
    for name in Settings.model_fields:
        assert f"`SDD_{name.upper()}`" in table
