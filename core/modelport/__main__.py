"""``python -m modelport``: the command line."""

from .cli import main

main()
