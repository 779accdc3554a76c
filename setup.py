"""The build of the package's compiled parts.

The tree walker and explainer (``registry/inference/native/``: ``tree_walk.c`` walks node records, ``tree_shap.c``
explains a walk, ``records.h`` describes the records), and the reader of a predict body's rows of numbers
(``json_rows.c``), are plain C loaded with ctypes (``registry/inference/tree_walk.py``), with no Python API, so
they are built as a shared library named ``tree_walk.so`` inside the package, not as an extension module.

``pip install .`` puts it beside its loader in site-packages, ``pip install -e .`` beside its sources in the
checkout. Everything else about the package is in pyproject.toml.
"""
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The library's flags, declared here only; they come after Python's own and any CFLAGS, so they win.
# -ffp-contract=off and -fno-fast-math: nothing fused or reordered, so forests add up exactly as
# scikit-learn's do. -frecord-gcc-switches keeps the command line in the library, where a test reads it.
TREE_WALK_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off", "-fno-fast-math",
                   "-frecord-gcc-switches"]

NATIVE = "registry/inference/native"
TREE_WALK = "registry.inference.native.tree_walk"


class BuildSharedLibrary(build_ext):
    """build_ext that builds the tree walker as a plain shared library: named ``NAME.so``, with no Python ABI tag,
    for ctypes; extension modules as usual."""

    def get_ext_filename(self, fullname: str) -> str:
        """``registry.inference.native.tree_walk`` → ``registry/inference/native/tree_walk.so`` (setuptools asks with
        the full name or its last part)."""
        if fullname.rsplit(".", 1)[-1] != TREE_WALK.rsplit(".", 1)[-1]:
            return super().get_ext_filename(fullname)
        return os.path.join(*fullname.split(".")) + ".so"

    def get_export_symbols(self, ext: Extension) -> list[str]:
        """The library's own symbols: it has no ``PyInit_`` function to export."""
        if ext.name != TREE_WALK:
            return super().get_export_symbols(ext)
        return ext.export_symbols


setup(
    ext_modules=[Extension(TREE_WALK,
                           sources=[f"{NATIVE}/tree_walk.c", f"{NATIVE}/tree_shap.c", f"{NATIVE}/low_priority.c",
                                    f"{NATIVE}/json_rows.c"],
                           depends=[f"{NATIVE}/records.h", f"{NATIVE}/low_priority.h"],
                           extra_compile_args=TREE_WALK_FLAGS)],
    cmdclass={"build_ext": BuildSharedLibrary},
)
