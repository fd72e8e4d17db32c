"""`python flows/compare.py ...`, the compare command's first address, kept so that existing scripts and
notes keep working; the command lives in cli/compare.py (`python cli/compare.py --help`)."""

from cli.compare import cli

if __name__ == "__main__":
    cli()
