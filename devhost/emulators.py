"""Start Azurite and the Cosmos DB emulator from node_modules as child processes, and stop them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = PROJECT_ROOT / "node_modules"

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key; not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_STORAGE_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def storage_connection_string(host: str, ports: dict[str, int]) -> str:
    """An Azurite connection string for explicit ports."""
    parts = [
        "DefaultEndpointsProtocol=http",
        f"AccountName={AZURITE_ACCOUNT}",
        f"AccountKey={AZURITE_KEY}",
        f"BlobEndpoint=http://{host}:{ports['blob']}/{AZURITE_ACCOUNT}",
        f"QueueEndpoint=http://{host}:{ports['queue']}/{AZURITE_ACCOUNT}",
        f"TableEndpoint=http://{host}:{ports['table']}/{AZURITE_ACCOUNT}",
    ]
    return ";".join(parts) + ";"


def storage_endpoints(connection_string: str) -> tuple[str, dict[str, int]] | None:
    """The local host and ports a storage connection string points at, or None if not local."""
    if connection_string.strip().rstrip(";") == "UseDevelopmentStorage=true":
        return "127.0.0.1", dict(DEFAULT_STORAGE_PORTS)
    fields = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    ports: dict[str, int] = {}
    host = ""
    for service in ("blob", "queue", "table"):
        endpoint = fields.get(f"{service.capitalize()}Endpoint")
        if not endpoint:
            continue
        url = urlparse(endpoint)
        if url.hostname not in ("127.0.0.1", "localhost"):
            return None
        host = url.hostname or host
        ports[service] = url.port or 80
    if "blob" not in ports or "queue" not in ports:
        return None
    ports.setdefault("table", free_port())
    return host, ports


def ensure_cosmos_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost that clients verify against.

    The emulator's shipped cert.pem expired in January 2021 and names no host, so a client that
    verifies TLS properly rejects it; devhost makes its own once and keeps it.
    """
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
            return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@dataclass
class Emulators:
    """The emulator processes this host started (none when they were already running)."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                # In-memory Azurite ignores SIGTERM once it has served a while; nothing is lost by not waiting.
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH; run `make dev`, which installs what devhost needs")
    return node


def _wait_until_answers(process: subprocess.Popen[bytes], host: str, port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answers(host, port):
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it answered")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {host}:{port} within 60 s")


def start_azurite(
    emulators: Emulators, host: str, ports: dict[str, int], location: Path | None, log: Path | None = None
) -> None:
    """Start Azurite on the given ports; in memory when location is None."""
    script = NODE_MODULES / "azurite" / "dist" / "src" / "azurite.js"
    args = [
        _node(), str(script), "--silent", "--skipApiVersionCheck", "--loose",
        "--blobHost", host, "--blobPort", str(ports["blob"]),
        "--queueHost", host, "--queuePort", str(ports["queue"]),
        "--tableHost", host, "--tablePort", str(ports["table"]),
    ]  # fmt: skip
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    process = _spawn(args, log)
    emulators.processes.append(process)
    for port in ports.values():
        _wait_until_answers(process, host, port, "Azurite")


def start_cosmos(emulators: Emulators, host: str, port: int, cert_dir: Path, log: Path | None = None) -> Path:
    """Start the Cosmos DB emulator with keep-alive and a verified certificate; returns the CA file."""
    cert, key = ensure_cosmos_certificate(cert_dir)
    script = Path(__file__).resolve().parent / "cosmos_server.js"
    process = _spawn([_node(), str(script), host, str(port), str(cert), str(key)], log)
    emulators.processes.append(process)
    _wait_until_answers(process, host, port, "Cosmos DB emulator")
    return cert


def _spawn(args: list[str], log: Path | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    # A new session so that Ctrl-C in a terminal reaches devhost, which then stops the child in order.
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def cosmos_host_port(endpoint: str) -> tuple[str, int] | None:
    """The local host and port of a Cosmos endpoint, or None when it is not on this machine."""
    url = urlparse(endpoint)
    if url.hostname not in ("127.0.0.1", "localhost"):
        return None
    return url.hostname or "127.0.0.1", url.port or 443
