"""Peers' packages that cannot share one process as they are.

MLServer's package imports its own gRPC server on import, whose generated messages register the Open
Inference Protocol's names (``inference.ServerLiveRequest``, …) in protobuf's one default pool; so does
tritonclient's gRPC client, from another file, and protobuf refuses the second ("duplicate symbol"). The
e2e step imports both (tests/e2e/test_v2_clients.py, tests/e2e/test_grpc.py). The V2 tests need only
MLServer's codecs and types, which import nothing of its server.
"""
import importlib.util
import sys
import types


def mlserver_without_its_server() -> None:
    """Make ``import mlserver.codecs`` and ``import mlserver.types`` work without running ``mlserver/__init__.py``
    (which imports its gRPC server): the package stands in ``sys.modules`` as a bare namespace of its folder."""
    if "mlserver" in sys.modules:
        return
    found = importlib.util.find_spec("mlserver")
    package = types.ModuleType("mlserver")
    package.__path__ = list(found.submodule_search_locations)
    sys.modules["mlserver"] = package
