"""The compiled walker's library: built by installing the package, with its flags declared once (setup.py);
a checkout that did not build it, or built it from other source, says what to run instead of serving anything."""
import ast
import os
import re
import subprocess
import sys

import pytest

from config import BASE_DIR
from registry.inference.tree_walk import LIBRARY, WalkerNotBuilt, load

EXACT_ARITHMETIC = ["-ffp-contract=off", "-fno-fast-math"]


def _declared_flags() -> list[str]:
    tree = ast.parse((BASE_DIR / "setup.py").read_text())
    [flags] = [node.value for node in tree.body
               if isinstance(node, ast.Assign) and node.targets[0].id == "TREE_WALK_FLAGS"]
    return ast.literal_eval(flags)


def _recorded_options(library) -> list[list[str]]:
    """The compiler's options as GCC records them in the library: its own section (-frecord-gcc-switches)
    and, where built with -g, the debug information's producer."""
    lines = re.findall(rb"GNU C[^\0]*", library.read_bytes())
    assert lines, f"{library} does not record its compiler's options"
    return [line.decode().split() for line in lines]


def test_the_flags_that_keep_the_arithmetic_exact_are_declared_once_in_the_build():
    assert set(EXACT_ARITHMETIC) <= set(_declared_flags())
    others = [path.name for path in (BASE_DIR / "Makefile", BASE_DIR / "Dockerfile", BASE_DIR / "pyproject.toml")
              if "-ffp-contract" in path.read_text() or "fast-math" in path.read_text()]
    assert others == []
    assert not (LIBRARY.parent / "build.sh").exists()


def test_the_installed_library_was_compiled_with_them_and_nothing_after_undoes_them():
    for options in _recorded_options(LIBRARY):
        assert [option for option in options if option.startswith("-ffp-contract=")][-1] == "-ffp-contract=off"
        math = [option for option in options if option.endswith("fast-math") or option == "-Ofast"]
        assert math[-1] == "-fno-fast-math"


def test_a_missing_library_names_the_command_that_builds_it(tmp_path):
    with pytest.raises(WalkerNotBuilt, match=r"tree_walk.so is missing: `pip install -e .` \(or `make`\) builds it"):
        load(tmp_path / "tree_walk.so")


@pytest.mark.parametrize("interface", [
    "int64_t tree_walk_node_size(void) { return 24; }\n",
    # Built before the walk checked what it reads: same records, another call.
    "int64_t tree_walk_node_size(void) { return 16; }\n",
    "int64_t tree_walk_node_size(void) { return 16; }\nint64_t tree_walk_version(void) { return 1; }\n",
], ids=["other-records", "unversioned", "older-version"])
def test_a_library_built_from_other_source_is_refused(tmp_path, interface):
    source = tmp_path / "tree_walk.c"
    source.write_text(f"#include <stdint.h>\n{interface}void tree_walk_output(void) {{}}\n")
    library = tmp_path / "tree_walk.so"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-o", library, source], check=True)
    with pytest.raises(WalkerNotBuilt, match=r"another version of tree_walk.c: run `pip install -e .` \(or `make`\) again"):
        load(library)


def test_the_app_loads_the_walker_when_it_is_imported_not_when_a_tree_comes():
    probe = "import sys; from api import create_app; print('registry.inference.tree_walk' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=BASE_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"]
