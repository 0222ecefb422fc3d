"""Print the server's OpenAPI document (the UI's TypeScript types are generated from it):
`python -m sdd.server.openapi > frontend/openapi.json`."""

from __future__ import annotations

import json
import sys
import tempfile

from sdd.server.app import create_app
from sdd.server.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=data_dir, secret_key="openapi-document-only-not-a-real-key"))  # noqa: S106
        json.dump(app.openapi(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
