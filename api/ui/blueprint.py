"""The dashboard's blueprint, on which each page module registers its views (``init_ui`` imports them)."""
from flask import Blueprint

from api.ui.formats import duration

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")
bp.add_app_template_filter(duration)
