"""gRPC over TLS (GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE) with tritonclient's gRPC client, and SIGTERM on the
real gunicorn: the calls in flight finish with their answers, then the server exits 0."""
import datetime
import ipaddress
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sklearn.ensemble import RandomForestRegressor
from tritonclient.utils import InferenceServerException

from bench.harness import server
from bench.harness.models import upload
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

CALLS = 16
ROWS = np.random.default_rng(5).normal(size=(500, 6))


def _self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (and localhost) and its key, as PEM files: their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "grpc.crt", folder / "grpc.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def _explained(client) -> tuple[float, np.ndarray]:
    rows = triton.InferInput("input-0", list(ROWS.shape), "FP64")
    rows.set_data_from_numpy(ROWS)
    answer = client.infer("slow", [rows], outputs=[triton.InferRequestedOutput("predict"),
                                                   triton.InferRequestedOutput("explanation")], client_timeout=120)
    return time.monotonic(), answer.as_numpy("predict")


def test_tls_and_a_sigterm_that_finishes_the_calls_in_flight(tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    address = f"127.0.0.1:{server.free_port()}"
    with fresh_database(tmp_path) as url:
        env = server.service_env(url, tmp_path / "artifacts", ADMIN_TOKEN, GRPC_BIND=address,
                                 GRPC_TLS_CERT_FILE=cert_file, GRPC_TLS_KEY_FILE=key_file, WORKER_THREADS=2,
                                 MAX_IN_FLIGHT_PER_MODEL=2, MAX_IN_FLIGHT=2, ADMISSION_WAIT_MS=60_000)
        server.migrate(env)
        live = server.start(env, tmp_path, workers=1)
        try:
            forest = RandomForestRegressor(n_estimators=60, max_depth=10, random_state=0).fit(ROWS, ROWS @ np.arange(6.0))
            assert upload(live, "slow", forest).status_code == 201
            promoted = requests.post(f"{live.url}/models/slow/versions/1/promote", json={},
                                                   headers=live.headers, timeout=60)
            assert promoted.status_code == 200
            tls = triton.InferenceServerClient(address, ssl=True, root_certificates=cert_file)
            assert tls.is_server_ready() and tls.is_model_ready("slow")
            plain = triton.InferenceServerClient(address)
            with pytest.raises(InferenceServerException):
                plain.is_server_live(client_timeout=10)
            assert _explained(tls)[1].tolist() == forest.predict(ROWS).tolist()

            with ThreadPoolExecutor(CALLS) as pool:
                clients = [triton.InferenceServerClient(address, ssl=True, root_certificates=cert_file) for _ in range(CALLS)]
                for client in clients:
                    assert client.is_server_live()  # connected before the stop
                calls = [pool.submit(_explained, client) for client in clients]
                time.sleep(0.5)  # the calls reach the worker (two at a time compute, the rest wait for a slot)
                stopped_at = time.monotonic()
                live.process.send_signal(signal.SIGTERM)
                answered = [call.result(timeout=300) for call in calls]
            exit_status = live.process.wait(timeout=120)
        finally:
            live.stop()

    assert all(predictions.tolist() == forest.predict(ROWS).tolist() for _, predictions in answered)
    assert max(at for at, _ in answered) > stopped_at, "every call ended before the stop: nothing was in flight"
    assert exit_status == 0, live.log_path.read_text()[-4000:]
