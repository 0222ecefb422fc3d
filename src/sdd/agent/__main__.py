"""`python -m sdd.agent ...` is `sdd agent ...`."""

import sys

from sdd.cli import app

if __name__ == "__main__":
    app(["agent", *sys.argv[1:]], prog_name="python -m sdd.agent")
