"""`python -m pipeline train ...`: see `pipeline.cli`."""

from pipeline.cli import main

if __name__ == "__main__":
    main()
