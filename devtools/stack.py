"""A private Docker daemon and an htpasswd-protected registry, started and stopped on demand.

Both listen only on a private unix socket and 127.0.0.1; the daemon runs without a network
bridge. Used by the test suite, `scripts/demo` and the benchmarks:

    with Stack() as stack:
        env = stack.env()          # DOCKER_HOST=unix:///…/docker.sock
        stack.registry             # "127.0.0.1:PORT"
        stack.username, stack.password

`python -m devtools.stack up` starts one and waits; Ctrl-C stops it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_IMAGE = "busybox:local"
_BUSYBOX_TOOLS = (
    "sh",
    "echo",
    "cat",
    "ls",
    "true",
    "false",
    "mkdir",
    "env",
    "sleep",
    "wc",
    "head",
    "dd",
    "seq",
    "yes",
    "rm",
)
REQUIRED_BINARIES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "busybox": "busybox-static",
}


class StackError(RuntimeError):
    pass


def missing_packages() -> list[str]:
    """Debian packages whose programs are not on PATH (or in /usr/sbin)."""
    search = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return sorted(
        {pkg for exe, pkg in REQUIRED_BINARIES.items() if not shutil.which(exe, path=search)}
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise StackError(f"{what} did not start within {timeout:.0f}s{tail}")


class Registry:
    """One `docker-registry serve` process with htpasswd auth on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        username: str,
        password: str,
        port: int | None = None,
        *,
        delete_enabled: bool = True,
        host: str = "127.0.0.1",
        tls: tuple[Path, Path] | None = None,
    ):
        self.root, self.username, self.password = root, username, password
        self.port = port or free_port()
        # storage.delete.enabled: without it the registry answers DELETE with 405.
        self.delete_enabled = delete_enabled
        # `host`: the name clients use (it must resolve to 127.0.0.1: see `ensure_host_name`);
        # the registry listens on 127.0.0.1 whatever it is. `tls`: (certificate, key).
        self.host, self.tls = host, tls
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def config_auth(self) -> str:
        """The `auth:` block of the registry's config: htpasswd (devtools.tokenauth: tokens)."""
        htpasswd = self.root / "htpasswd"
        if not htpasswd.exists():
            # -i reads the password from stdin, so it never shows in the process list.
            out = subprocess.run(
                ["htpasswd", "-niB", self.username],
                input=self.password + "\n",
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            htpasswd.write_text(out)
        return f"auth:\n  htpasswd:\n    realm: hubtasks-test\n    path: {htpasswd}\n"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        auth = self.config_auth()
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            f"  delete:\n    enabled: {'true' if self.delete_enabled else 'false'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            + (
                f"  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}\n"
                if self.tls
                else ""
            )
            + auth
        )
        log = self.root / "registry.log"
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(self.ready, 20, f"registry on {self.address}", log)

    def _open(self, request, timeout: float):
        """urlopen, trusting this registry's test certificate without checking it."""
        import ssl

        context = ssl._create_unverified_context() if self.tls else None
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def ready(self) -> bool:
        try:
            self._open(f"{self.url}/v2/", timeout=1)
        except urllib.error.HTTPError as error:
            return error.code == 401
        except OSError:
            return False
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # --- the registry's HTTP API, for checking what arrived -------------------------------
    def request(self, path: str, *, method: str = "GET", accept: str | None = None):
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req = urllib.request.Request(f"{self.url}{path}", method=method)
        req.add_header("Authorization", f"Basic {token}")
        if accept:
            req.add_header("Accept", accept)
        return self._open(req, timeout=10)

    def tags(self, repository: str) -> list[str]:
        try:
            with self.request(f"/v2/{repository}/tags/list") as resp:
                return sorted(json.load(resp).get("tags") or [])
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        accept = ", ".join(
            [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
        )
        try:
            with self.request(
                f"/v2/{repository}/manifests/{tag}", method="HEAD", accept=accept
            ) as resp:
                return resp.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise


class Daemon:
    """One `dockerd` on a private unix socket: no bridge, no iptables, its own data dir."""

    def __init__(self, root: Path):
        self.root = root
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def listen_args(self) -> list[str]:
        """Where and how the daemon listens; the TLS daemon adds its certificates."""
        return ["-H", self.host]

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / "dockerd.log"
        dockerd = shutil.which("dockerd", path=os.environ.get("PATH", "") + ":/usr/sbin")
        if not dockerd:
            raise StackError("dockerd not found; apt-get install docker.io")
        self.process = subprocess.Popen(
            [
                dockerd,
                *self.listen_args(),
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "x"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait(self.ready, 60, f"dockerd at {self.host}", log)
        except BaseException:
            self.stop()
            raise

    def _check_alive(self) -> None:
        if self.process and self.process.poll() is not None:
            raise StackError(
                f"dockerd exited with {self.process.returncode}:\n"
                + (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
            )

    def ready(self) -> bool:
        self._check_alive()
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b"OK" in sock.recv(4096)
            except OSError:
                return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def ensure_host_name(name: str, address: str = "127.0.0.1") -> None:
    """Make `name` resolve to `address` (a line in /etc/hosts, which needs root), so that a
    registry can be reached by a host name as in the wild; a no-op when it already does."""
    try:
        if address in {info[4][0] for info in socket.getaddrinfo(name, None)}:
            return
    except OSError:
        pass
    try:
        with open("/etc/hosts", "a", encoding="utf-8") as hosts:
            hosts.write(f"{address} {name}  # added by hubtasks' devtools.stack\n")
    except OSError as error:
        raise StackError(
            f"cannot add {name} to /etc/hosts ({error}); run the tests as root"
        ) from None
    # A running dockerd (Go) keeps what it read of /etc/hosts for 5 s: wait that out, or it
    # would ask the DNS server for the name instead (traffic off this machine).
    time.sleep(5.5)


def make_certificates(
    folder: Path, *, days: int = 7, names: tuple[str, ...] = ("localhost",)
) -> dict[str, Path]:
    """A throwaway CA, a server and a client certificate, made with the `openssl` CLI.

    Layout (ECDSA P-256 keys, written 0600):

        folder/ca.pem, ca-key.pem              the CA
        folder/server-cert.pem, server-key.pem SAN IP:127.0.0.1, DNS:localhost; serverAuth
        folder/client/ca.pem, cert.pem, key.pem clientAuth: the names DOCKER_CERT_PATH expects
    """
    openssl = shutil.which("openssl")
    if not openssl:
        raise StackError("openssl not found; apt-get install openssl")
    folder.mkdir(parents=True, exist_ok=True)
    client = folder / "client"
    client.mkdir(exist_ok=True)

    def run(*args: str | Path) -> None:
        result = subprocess.run(
            [openssl, *map(str, args)], cwd=folder, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise StackError(f"openssl {args[0]} failed:\n{result.stderr[-2000:]}")

    def key(path: Path) -> Path:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
        path.chmod(0o600)
        return path

    def ext(name: str, text: str) -> Path:
        path = folder / f"{name}.cnf"
        path.write_text(text)
        return path

    # Our own minimal config, so the system openssl.cnf cannot add or clash with extensions.
    config = ext(
        "req",
        "[req]\ndistinguished_name = dn\nx509_extensions = ca\n[dn]\n"
        "[ca]\nbasicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n",
    )
    ca_key, ca = key(folder / "ca-key.pem"), folder / "ca.pem"
    run("req", "-x509", "-new", "-key", ca_key, "-out", ca, "-days", days,
        "-subj", "/CN=hubtasks test CA", "-config", config)  # fmt: skip
    leaf = "basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
    issued = {
        "server": (
            key(folder / "server-key.pem"),
            folder / "server-cert.pem",
            "/CN=localhost",
            leaf
            + "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, "
            + ", ".join(f"DNS:{name}" for name in names)
            + "\n",
        ),
        "client": (
            key(client / "key.pem"),
            client / "cert.pem",
            "/CN=hubtasks test client",
            leaf + "extendedKeyUsage = clientAuth\n",
        ),
    }
    for name, (key_path, cert, subject, extensions) in issued.items():
        csr = folder / f"{name}.csr"
        run("req", "-new", "-key", key_path, "-out", csr, "-subj", subject,
            "-config", config)  # fmt: skip
        run(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", days, "-extfile", ext(name, extensions),
        )  # fmt: skip
        csr.unlink()
    shutil.copy2(ca, client / "ca.pem")
    return {
        "ca": ca,
        "server_cert": folder / "server-cert.pem",
        "server_key": folder / "server-key.pem",
        "client": client,
    }


class TlsDaemon(Daemon):
    """A second kind of `dockerd`: TCP on 127.0.0.1 with `--tlsverify`, and no unix socket.

    Certificates are made at start under `root/tls` (`make_certificates`); the client side is
    `root/tls/client` with ca.pem, cert.pem and key.pem, so `env()` can point DOCKER_CERT_PATH
    at it. Like `Daemon`: no bridge, no iptables, its own data root, exec root and pidfile (the
    exec root holds the containerd it starts, so it never shares one with another daemon).
    """

    def __init__(self, root: Path, port: int | None = None):
        super().__init__(root)
        self.port = port or free_port()

    @property
    def socket(self) -> Path:  # there is no unix socket; kept for the Daemon interface
        raise AttributeError("TlsDaemon listens on TCP only; use .host or .env()")

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def cert_path(self) -> Path:
        return self.root / "tls" / "client"

    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.cert_path),
        }

    def listen_args(self) -> list[str]:
        certs = make_certificates(self.root / "tls")
        return [
            "-H",
            self.host,
            "--tlsverify",
            "--tlscacert",
            str(certs["ca"]),
            "--tlscert",
            str(certs["server_cert"]),
            "--tlskey",
            str(certs["server_key"]),
        ]

    def ssl_context(self, *, client_cert: bool = True):
        """A client-side context trusting the test CA (with or without the client cert)."""
        import ssl

        context = ssl.create_default_context(cafile=str(self.cert_path / "ca.pem"))
        if client_cert:
            context.load_cert_chain(self.cert_path / "cert.pem", self.cert_path / "key.pem")
        return context

    def ready(self) -> bool:
        self._check_alive()
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
                self.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b"OK" in tls.recv(4096)
        except OSError:  # includes ssl.SSLError
            return False


def make_base_image(
    docker_host: str, name: str = BASE_IMAGE, *, environment: dict[str, str] | None = None
) -> None:
    """Import a tiny busybox image (no pulls are possible here) so that `RUN` works.

    `environment` (e.g. `TlsDaemon.env()`) adds DOCKER_TLS_VERIFY / DOCKER_CERT_PATH; its
    DOCKER_HOST is ignored in favour of `docker_host`.
    """
    import docker

    if environment is None:
        client = docker.DockerClient(base_url=docker_host, timeout=120)
    else:
        environment = {**environment, "DOCKER_HOST": docker_host}
        client = docker.from_env(environment=environment, timeout=120)
    try:
        try:
            client.images.get(name)
            return
        except docker.errors.ImageNotFound:
            pass
        busybox = shutil.which("busybox") or "/bin/busybox"
        with tempfile.TemporaryDirectory() as tmp:
            rootfs = Path(tmp) / "rootfs"
            (rootfs / "bin").mkdir(parents=True)
            (rootfs / "tmp").mkdir()
            shutil.copy2(busybox, rootfs / "bin" / "busybox")
            for tool in _BUSYBOX_TOOLS:
                (rootfs / "bin" / tool).symlink_to("busybox")
            archive = Path(tmp) / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
            repo, _, tag = name.partition(":")
            client.api.import_image_from_file(str(archive), repository=repo, tag=tag or "latest")
    finally:
        client.close()


class Stack:
    """A daemon plus a registry in one temporary folder; a context manager."""

    def __init__(
        self, root: Path | None = None, username: str = "hubuser", password: str | None = None
    ):
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="hub-", dir="/tmp"))
        self.username = username
        self.password = password or base64.b32encode(os.urandom(15)).decode().lower()
        self.daemon = Daemon(self.root / "d")
        self.registry_server = Registry(self.root / "r", self.username, self.password)

    @property
    def registry(self) -> str:
        return self.registry_server.address

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.daemon.host}

    def start(self) -> Stack:
        missing = missing_packages()
        if missing:
            raise StackError(f"missing programs; apt-get install {' '.join(missing)}")
        try:
            self.registry_server.start()
            self.daemon.start()
            make_base_image(self.daemon.host)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.daemon.stop()
        self.registry_server.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up"])
    parser.parse_args()
    # `kill` as well as Ctrl-C stops the daemon and the registry (SIGTERM would otherwise end
    # Python at once and leave both running).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with Stack() as stack:
        print(f"export DOCKER_HOST={stack.daemon.host}")
        print(
            f"HUB_REGISTRY={stack.registry} HUB_USERNAME={stack.username} (password in "
            f"{stack.root}/r/password)"
        )
        (stack.root / "r" / "password").write_text(stack.password)
        os.chmod(stack.root / "r" / "password", 0o600)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()


class SshServer:
    """An `sshd` on 127.0.0.1 whose sessions reach a given Docker daemon, for DOCKER_HOST=ssh://.

    Keys and config live in `root`; the server sets DOCKER_HOST for its sessions (SetEnv), so
    `docker system dial-stdio` on the "remote" side reaches the test daemon. The client side is
    the system `ssh` with this server's client config, through a small `ssh` shim on PATH
    (OpenSSH reads ~/.ssh from the passwd entry, not $HOME, so a config cannot be injected
    any other way without touching the real home).
    """

    def __init__(self, root: Path, docker_host: str, port: int | None = None):
        self.root, self.docker_host = root, docker_host
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": self.host,
            "PATH": f"{self.root / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def start(self) -> None:
        sshd = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin")
        if not sshd or not shutil.which("ssh"):
            raise StackError("sshd/ssh not found; apt-get install openssh-server openssh-client")
        self.root.mkdir(parents=True, exist_ok=True)
        for key in ("host_key", "client_key"):
            if not (self.root / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / key)],
                    check=True,
                )
        shutil.copy(self.root / "client_key.pub", self.root / "authorized_keys")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.root / 'host_key'}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            f"SetEnv DOCKER_HOST={self.docker_host}\n"
        )
        client = self.root / "client_config"
        client.write_text(
            f"Host 127.0.0.1\n  Port {self.port}\n  User root\n"
            f"  IdentityFile {self.root / 'client_key'}\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )
        shim = self.root / "bin" / "ssh"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {client} "$@"\n')
        shim.chmod(0o755)
        log = self.root / "sshd.log"
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        _wait(listening, 10, f"sshd on 127.0.0.1:{self.port}", log)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
