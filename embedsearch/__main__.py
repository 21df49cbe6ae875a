"""``python -m embedsearch`` (also what ``torchrun -m embedsearch`` runs)."""

from embedsearch.cli.app import main

if __name__ == "__main__":
    main()
