"""The harness's ports for the servers of one start: distinct, and never the gRPC port the settings name
(picked one at a time, two servers or a server and its gRPC port were once given the same one)."""
from bench.harness import server


def test_ports_for_several_servers_are_distinct():
    ports = server.http_ports({}, 4)

    assert len(set(ports)) == 4


def test_the_grpc_port_the_settings_name_is_never_handed_out(monkeypatch):
    monkeypatch.setattr(server, "free_ports", lambda count: [8001, 9000, 9001][:count])

    assert server.http_ports({"GRPC_BIND": "127.0.0.1:8001"}, 2) == [9000, 9001]
    assert server.http_ports({}, 2) == [8001, 9000]
