"""``python -m pyrometer``: the same command line as ``pyrometer``."""

from pyrometer.cli.app import main

main()
