"""`python -m electra ...` (and so `torchrun -m electra ...`) runs the command-line interface."""
from electra.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
