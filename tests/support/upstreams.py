"""Raw upstreams for the upstream client's tests: TCP servers that answer byte by byte as each
test scripts them (in the test's own loop, or in a thread with blocking sockets when the test
must hold its loop still), and certificates for TLS ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aitre.relay.pool import Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


class Server:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request: its head, and the body its Content-Length announces. b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def serve(
    handler: Handler, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Server]:
    server = Server(host)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = server.connections
        server.connections += 1
        try:
            await handler(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(on_connect, host, 0, ssl=ssl_context)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def answering(*answers: bytes, server_ref: list[Server] | None = None) -> Handler:
    """Reads requests and sends `answers` in turn on each connection (keep-alive)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        for answer in answers:
            request = await read_request(reader)
            if not request:
                return
            if server_ref:
                server_ref[0].requests.append(request)
            writer.write(answer)
            await writer.drain()
        await reader.read()  # keep the connection open until the client closes it

    return handler


async def keep_alive_server(answer: bytes = OK) -> tuple[Handler, list[Server]]:
    ref: list[Server] = []
    return answering(*([answer] * 100), server_ref=ref), ref


async def get(pool: Pool, url: str, **kw: float) -> tuple[int, dict[str, str], bytes]:
    resp = await pool.request("GET", url, {}, None, **kw)
    try:
        return resp.status, resp.headers, await resp.read(1 << 20, 5.0)
    finally:
        resp.release()


class ThreadServer:
    """A keep-alive upstream on blocking sockets in a thread: it answers OK to every request and
    closes a connection when told, while the test's own event loop may be standing still."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.connections: list[socket.socket] = []
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                while len(data) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                data = data[length:]
                self.requests += 1
                conn.sendall(OK)
        except OSError:
            return

    def close_connection(self, index: int) -> None:
        conn = self.connections[index]
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def stop(self) -> None:
        self._stop = True
        self._listener.close()
        for conn in self.connections:
            conn.close()


@contextmanager
def thread_server() -> Iterator[ThreadServer]:
    server = ThreadServer()
    try:
        yield server
    finally:
        server.stop()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    names: list[x509.GeneralName],
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (that is its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(
        "aitre test upstream", key, None, key, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], True
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return cert_path, key_path


def ca_and_leaf(tmp: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for the DNS name `host` that it signed: (ca, cert, key) files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("aitre test CA", ca_key, None, ca_key, [], True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(host, key, ca.subject, ca_key, [x509.DNSName(host)], False)
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return ca_path, cert_path, key_path


class EndlessStream:
    """An OpenAI-style upstream (blocking sockets, in a thread) whose chat streams never end:
    content chunks as fast as the reader takes them. `hung_up` is set when a stream's reader
    goes away."""

    CHUNK = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" word"}}]}\n\n'

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.streams = 0
        self.hung_up = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.streams += 1
            frame = b"%x\r\n%s\r\n" % (len(self.CHUNK), self.CHUNK)
            try:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                while True:
                    conn.sendall(frame * 16)
            except OSError:
                self.hung_up.set()

    def stop(self) -> None:
        self._listener.close()


@contextmanager
def endless_stream() -> Iterator[EndlessStream]:
    server = EndlessStream()
    try:
        yield server
    finally:
        server.stop()
