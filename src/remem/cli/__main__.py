"""``python -m remem.cli`` — the same as the ``remem`` script."""

from . import main

main()
