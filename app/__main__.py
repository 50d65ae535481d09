"""`python -m app`: the same command line as `sloguard` (how `serve` starts its outbox worker process)."""

from app.cli import main

main()
