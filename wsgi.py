"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``."""
import warnings

from api import create_app

# This process serves rows as arrays in signature order, already checked: scikit-learn's warning
# that they carry no feature names is noise, once per model, in every worker's log.
warnings.filterwarnings("ignore", message="X does not have valid feature names")

app = create_app()
