"""``python -m geounet`` runs the CLI."""

from geounet.cli import main

if __name__ == "__main__":
    main()
