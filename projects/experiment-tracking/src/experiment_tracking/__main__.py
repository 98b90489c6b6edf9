"""``python -m experiment_tracking`` runs the CLI (also how torchrun starts each process)."""

from experiment_tracking.cli import main

if __name__ == "__main__":
    main()
