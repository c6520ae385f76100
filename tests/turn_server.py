"""A real coturn for the tests: Debian's ``turnserver`` on loopback, TURN REST auth, UDP, TCP and TLS.

``running_turn_server(tmp_dir)`` makes a CA and a ``localhost``/127.0.0.1 certificate signed by
it, starts ``turnserver`` with a random ``static-auth-secret`` on free ports, waits until UDP,
TCP and TLS answer, yields a ``TurnServer`` and kills the process at the end. Its log (verbose:
one line per allocation, and per-session usage counters when an allocation ends) is what the
tests read to prove that media went through the relay. ``coturn`` is that server as a
module-scoped fixture, for a test module to import.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import random
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TURNSERVER = "turnserver"
REALM = "peerbot.test"
_USAGE = re.compile(
    r"session (\d+): peer usage: realm=<[^>]*>, username=<([^>]*)>, rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)"
)


@dataclass(frozen=True)
class PeerUsage:
    """What coturn relayed between one allocation and its peers (from its usage log line)."""

    session: str
    username: str
    packets_from_peers: int
    bytes_from_peers: int
    packets_to_peers: int
    bytes_to_peers: int


@dataclass(frozen=True)
class TurnServer:
    """A running coturn: its URLs, shared secret, CA certificate and log."""

    udp_port: int
    tls_port: int
    secret: str
    ca_file: Path
    log_file: Path
    command: tuple[str, ...]

    @property
    def udp_url(self) -> str:
        return f"turn:127.0.0.1:{self.udp_port}?transport=udp"

    @property
    def tcp_url(self) -> str:
        return f"turn:127.0.0.1:{self.udp_port}?transport=tcp"

    @property
    def tls_url(self) -> str:
        return f"turns:127.0.0.1:{self.tls_port}?transport=tcp"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def peer_usage(self, user: str) -> list[PeerUsage]:
        """Usage of the ended allocations whose TURN REST username is ``<expiry>:<user>``."""
        return [
            PeerUsage(m[1], m[2], int(m[3]), int(m[4]), int(m[5]), int(m[6]))
            for m in _USAGE.finditer(self.log())
            if m[2].partition(":")[2] == user
        ]

    def allocations(self, user: str) -> int:
        """Allocations coturn granted to ``user`` (its ``ALLOCATE processed, success`` lines)."""
        granted = rf"user <\d+:{re.escape(user)}>: incoming packet ALLOCATE processed, success"
        return len(re.findall(granted, self.log()))


def _free_port(pair: bool) -> int:
    """A loopback port free for TCP (and UDP too when ``pair``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not pair:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port for coturn")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for localhost / 127.0.0.1: ``(ca, cert, key)`` PEM files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerbot test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "turn-cert.pem", directory / "turn-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


def _stun_binding_answered(port: int) -> bool:
    # A STUN Binding request (RFC 8489): type 0x0001, length 0, magic cookie, transaction id.
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + secrets.token_bytes(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.2)
        udp.sendto(request, ("127.0.0.1", port))
        try:
            answer = udp.recv(2048)
        except OSError:
            return False
    return answer[:2] == b"\x01\x01" and answer[8:20] == request[8:20]


def _tcp_accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _wait_ready(process: subprocess.Popen[bytes], server: TurnServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited with {process.returncode}:\n{_tail(server.log_file)}")
        if _tcp_accepts(server.udp_port) and _tcp_accepts(server.tls_port) and _stun_binding_answered(server.udp_port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"turnserver did not answer on its ports within {timeout:g} s:\n{_tail(server.log_file)}")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


@contextlib.contextmanager
def running_turn_server(directory: Path, *, ready_timeout: float = 10.0) -> Iterator[TurnServer]:
    """Run coturn on 127.0.0.1 until the block ends. Fails (never skips) if it is not installed."""
    executable = shutil.which(TURNSERVER) or ("/usr/bin/turnserver" if Path("/usr/bin/turnserver").exists() else None)
    if executable is None:
        raise RuntimeError(
            "coturn's 'turnserver' is not installed, and the TURN tests need a real one:"
            " run 'apt-get install -y coturn' (or 'make' installs it)"
        )
    ca_file, cert_file, key_file = make_certificates(directory)
    udp_port, tls_port = _free_port(pair=True), _free_port(pair=False)
    min_port = random.randrange(40000, 60000, 200)
    secret = secrets.token_urlsafe(24)
    log_file = directory / "turnserver.log"
    command = (
        executable, "-n",  # no configuration file: everything is on this line
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--listening-port={udp_port}", f"--tls-listening-port={tls_port}",
        f"--min-port={min_port}", f"--max-port={min_port + 199}",
        "--use-auth-secret", f"--static-auth-secret={secret}", f"--realm={REALM}",
        f"--cert={cert_file}", f"--pkey={key_file}", "--no-dtls", "--no-tlsv1", "--no-tlsv1_1",
        # Both peers of a test live on this machine: the relay must be allowed to reach loopback.
        "--allow-loopback-peers", "--no-multicast-peers",
        "--no-cli", "--no-rfc5780", "--no-software-attribute",
        "--verbose", f"--log-file={log_file}", "--simple-log", "--no-stdout-log",
        f"--pidfile={directory / 'turnserver.pid'}", f"--userdb={directory / 'turndb'}",
    )
    server = TurnServer(udp_port, tls_port, secret, ca_file, log_file, command)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(process, server, ready_timeout)
        yield server
    finally:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def coturn(tmp_path_factory) -> Iterator[TurnServer]:
    """One coturn for a test module: ``from turn_server import coturn  # noqa: F401`` there."""
    with running_turn_server(tmp_path_factory.mktemp("coturn")) as server:
        print(f"\ncoturn: {' '.join(server.command).replace(server.secret, '<secret>')}")
        yield server
