"""``python -m trainers``: see ``python -m trainers --help``."""
from trainers.cli import cli

cli(prog_name="python -m trainers")
