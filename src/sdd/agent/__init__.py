"""The compute agent: runs on every node, dials out to the server, runs IDEs and one tunnel."""
