"""Command line entry point (filled in by the hub)."""


def main() -> None:
    print("lastseen")
