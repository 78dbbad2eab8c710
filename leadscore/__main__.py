"""`python -m leadscore`: the `leadscore` command with this interpreter and this checkout."""

from leadscore.cli import main

main()
