"""The compiled walker's library: a checkout that did not build it, or built it from other source, says
what to run instead of serving anything."""
import subprocess
import sys

import pytest

from config import BASE_DIR
from registry.serving.tree_walk import WalkerNotBuilt, load


def test_a_missing_library_names_the_command_that_builds_it(tmp_path):
    with pytest.raises(WalkerNotBuilt, match=r"tree_walk.so is missing: `make` builds it"):
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
    subprocess.run([BASE_DIR / "registry/serving/native/build.sh", source, library], check=True)
    with pytest.raises(WalkerNotBuilt, match="another version of tree_walk.c: run `make` again"):
        load(library)


def test_the_app_loads_the_walker_when_it_is_imported_not_when_a_tree_comes():
    probe = "import sys; from api import create_app; print('registry.serving.tree_walk' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=BASE_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"]
