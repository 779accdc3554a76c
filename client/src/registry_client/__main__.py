"""``python -m registry_client``: the command line (registry_client.cli)."""
import sys

from registry_client.cli import main

sys.exit(main())
