"""Stand-ins for code-server and frpc, for machines where neither is installed.

Each program speaks the command line and config files of the real one, so the agent drives it
without knowing the difference. They import only the standard library: they must be listening
within a blink of being started, and the agent installs them without the server's dependencies.
"""
