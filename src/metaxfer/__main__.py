"""Allow ``python -m metaxfer``."""

from metaxfer.cli.main import main

if __name__ == "__main__":
    main()
