"""What the compiled tree forms (``fast_trees``, ``fast_boosting``) share: a state of arrays and plain values,
from which the rest is made again, and an explainer made once, on first use."""
from __future__ import annotations

from registry.inference.tree_shap import NotExplainable, TreeExplainer


class CompiledForm:
    """A compiled model of trees whose attributes named in ``_BUILT`` are made from the others and are not part
    of its state; a subclass says in ``_explained`` what its explainer is made of."""

    _BUILT: frozenset[str] = frozenset({"_explainer"})
    _explainer: TreeExplainer | NotExplainable | None = None

    def __getstate__(self) -> dict:
        """The arrays and values that make it; not the walker built from them."""
        return {name: value for name, value in vars(self).items() if name not in self._BUILT}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def explainer(self) -> TreeExplainer:
        """The explainer of these trees (made once, on first use); ``NotExplainable`` naming why there is none."""
        if self._explainer is None:
            try:
                self._explainer = TreeExplainer(**self._explained())
            except NotExplainable as error:
                self._explainer = error
        if isinstance(self._explainer, NotExplainable):
            raise self._explainer
        return self._explainer

    def _explained(self) -> dict:
        """The arguments of ``TreeExplainer`` for these trees."""
        raise NotImplementedError
