"""The `sidrec` command line (filled in below)."""


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("sidrec: no subcommands yet")
