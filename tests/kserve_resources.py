"""Check KServe resources (YAML files) against the resource models KServe's Python SDK ships, strictly: every
field a model of the SDK (or of the Kubernetes client it builds on) names, of the type it says, each
required one present, nothing else. Run by the KServe venv's Python (requirements-kserve.txt), apart from the
service's: ``python tests/kserve_resources.py FILE…``; prints each problem with its path, exits 1 if any.
"""
import re
import sys
from importlib.metadata import version

import kserve
import kubernetes.client
import yaml

KINDS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "V1alpha1ClusterServingRuntime",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PLAIN = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object, "datetime": str, "date": str,
         "StrictStr": str, "StrictInt": int, "StrictBool": bool, "ResourceQuantity": (str, int, float), "IntOrString": (str, int)}


def model_class(name: str):
    return getattr(kserve, name, None) or getattr(kubernetes.client, name)


def problems(value, type_name: str, path: str) -> list[str]:
    """What is wrong with ``value`` as the SDK's ``type_name``, each with the path to it."""
    if value is None:
        return []
    if optional := re.fullmatch(r"Optional\[(.+)\]", type_name):
        return problems(value, optional[1], path)
    if listed := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: a list, not {type(value).__name__}"]
        return [found for i, item in enumerate(value) for found in problems(item, listed[1], f"{path}[{i}]")]
    if mapped := re.fullmatch(r"dict\((\w+), (.+)\)|Dict\[(\w+), (.+)\]", type_name):
        if not isinstance(value, dict):
            return [f"{path}: a mapping, not {type(value).__name__}"]
        inner = mapped[2] or mapped[4]
        return [found for key, item in value.items() for found in problems(item, inner, f"{path}.{key}")]
    if type_name in PLAIN:
        wanted = PLAIN[type_name]
        ok = isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))
        return [] if ok else [f"{path}: {type_name}, not {type(value).__name__} {value!r}"]
    klass = model_class(type_name)
    if not isinstance(value, dict):
        return [f"{path}: a {type_name} mapping, not {type(value).__name__}"]
    python_name = {field: name for name, field in klass.attribute_map.items()}
    found = [f"{path}.{key}: no such field in {type_name}" for key in value if key not in python_name]
    if hasattr(klass, "model_fields"):  # the Kubernetes client's models (pydantic): their required fields
        found += [f"{path}.{klass.attribute_map[name]}: required by {type_name}" for name, field in klass.model_fields.items()
                  if field.is_required() and klass.attribute_map.get(name) not in value]
    else:
        try:  # KServe's models check their required fields and allowed values as they are made
            klass(**{python_name[key]: item for key, item in value.items() if key in python_name})
        except ValueError as refused:
            found.append(f"{path}: {refused}")
    for key, item in value.items():
        if key in python_name:
            found += problems(item, klass.openapi_types[python_name[key]], f"{path}.{key}")
    return found


def check(document: dict) -> list[str]:
    """What is wrong with one resource."""
    kind = KINDS.get((document.get("apiVersion"), document.get("kind")))
    if kind is None:
        return [f"{document.get('apiVersion')}/{document.get('kind')}: not a KServe resource this check knows"]
    return problems(document, kind, document["kind"])


def main(paths: list[str]) -> int:
    found = [f"{path}: {problem}" for path in paths for document in yaml.safe_load_all(open(path)) if document
             for problem in check(document)]
    print("\n".join(found) or f"{len(paths)} files: every resource is as KServe {version('kserve')} defines it")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
