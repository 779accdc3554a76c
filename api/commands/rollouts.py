"""``flask rollouts tick``: judge every running rollout plan now (what the controller does every tick)."""
import json
from dataclasses import asdict

import click
from flask import current_app
from flask.cli import AppGroup

from api.domain import EXTENSION
from registry.autopilot.controller import tick as tick_now

group = AppGroup("rollouts", help="Rollout plans on autopilot.")


@group.command("tick")
def tick():
    """Judge every running plan once, act where its gates decided, and print the decisions as JSON
    (run it holding no lease: with ROLLOUT_TICK_SECONDS=0, or as the only controller)."""
    decisions = tick_now(current_app.extensions[EXTENSION].runtime)
    click.echo(json.dumps([asdict(decision) for decision in decisions]))
