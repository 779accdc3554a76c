"""Compiled inference imports with NumPy alone: a batch job or the client can load it where neither
Flask, SQLAlchemy nor scikit-learn is imported."""
import subprocess
import sys

from config import BASE_DIR

HEAVY = ("flask", "sqlalchemy", "sklearn", "scipy", "pandas")


def test_the_inference_room_imports_no_web_framework_database_or_scikit_learn():
    code = ("import sys; import registry.inference.predictors; "
            f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=BASE_DIR, check=True)
    assert ran.stdout.strip() == "[]"
