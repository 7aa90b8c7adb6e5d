"""`python -m rnncli ...` is the same as the `rnncli` console script."""

from rnncli.cli import main

if __name__ == "__main__":
    main()
