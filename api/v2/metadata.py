"""What the V2 metadata routes say about a model: datatypes and shapes from its stored signature."""
from registry.artifacts.signature import Signature
from registry.serving.cache import ServableModel

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
EXPLANATION = "explanation"  # per row, one JSON document: {"base_value", "values"} (registry.serving.explanations)
MATRIX_INPUT = "input-0"
# KServe's names of the runtimes that serve each library's models.
_PLATFORMS = {"scikit-learn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm"}
_FEATURE_DATATYPES = {"float64": "FP64", "float32": "FP32", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}


def model_metadata(servable: ServableModel, versions: list[int]) -> dict:
    """The model metadata response: name, versions, platform, inputs, outputs, parameters."""
    signature = servable.signature
    return {
        "name": servable.model,
        "versions": [str(number) for number in versions],
        "platform": _PLATFORMS.get(servable.framework, "sklearn"),
        "inputs": _inputs(signature),
        "outputs": _outputs(servable),
        "parameters": {
            "version": str(servable.version),
            "task": servable.task,
            "kind": servable.kind,
            "feature_names": signature.names,
            "feature_dtypes": [feature.dtype for feature in signature.features],
        },
    }


def output_names(servable: ServableModel) -> list[str]:
    """The outputs ``servable`` can answer with."""
    return [PREDICT, PREDICT_PROBA, EXPLANATION] if servable.task == "classification" else [PREDICT, EXPLANATION]


def _inputs(signature: Signature) -> list[dict]:
    """One [-1, F] tensor for a numeric model; one [-1, 1] tensor per feature when some take text."""
    if signature.all_numeric:
        features = {"feature_names": signature.names}
        return [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, len(signature.names)], "parameters": features}]
    return [
        {"name": feature.name, "datatype": _FEATURE_DATATYPES.get(feature.dtype, "BYTES"), "shape": [-1, 1]}
        for feature in signature.features
    ]


def _outputs(servable: ServableModel) -> list[dict]:
    classes = servable.signature.classes
    explanation = {"name": EXPLANATION, "datatype": "BYTES", "shape": [-1]}
    if servable.task != "classification" or classes is None:
        return [{"name": PREDICT, "datatype": "FP64", "shape": [-1]}, explanation]
    return [
        {"name": PREDICT, "datatype": _label_datatype(classes), "shape": [-1]},
        {"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, len(classes)], "parameters": {"classes": list(classes)}},
        explanation,
    ]


def _label_datatype(classes: tuple) -> str:
    if all(isinstance(label, bool) for label in classes):
        return "BOOL"
    if all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        return "INT64"
    if all(isinstance(label, (int, float)) and not isinstance(label, bool) for label in classes):
        return "FP64"
    return "BYTES"
