"""The ``metaxfer`` command line (typer)."""
