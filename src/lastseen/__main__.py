"""``python -m lastseen`` is the ``lastseen`` command."""

from lastseen.cli import main

main()
