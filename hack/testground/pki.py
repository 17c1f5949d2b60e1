"""Certificates and keys of the local control plane, made with the openssl command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "7"  # a test cluster lives minutes; a week covers a long-running demo


@dataclass(frozen=True)
class ClusterPki:
    """Paths of the files the control plane's components are started with."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path  # CN=turnout-admin, O=system:masters
    admin_key: Path
    front_proxy_cert: Path  # the API server's identity towards aggregated APIs
    front_proxy_key: Path
    service_account_key: Path
    service_account_pub: Path


def create_pki(directory: Path, apiserver_ips: list[str]) -> ClusterPki:
    """Create a CA, the API server's serving pair, an admin client pair and a service-account key.

    ``apiserver_ips`` become the serving certificate's IP SANs (127.0.0.1 and the Service IP).
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = ClusterPki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        apiserver_cert=directory / "apiserver.crt",
        apiserver_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        front_proxy_cert=directory / "front-proxy.crt",
        front_proxy_key=directory / "front-proxy.key",
        service_account_key=directory / "sa.key",
        service_account_pub=directory / "sa.pub",
    )
    _openssl(
        "req", "-x509", "-new", "-nodes", *_EC_KEY, "-keyout", pki.ca_key, "-out", pki.ca_cert,
        "-days", _DAYS, "-subj", "/CN=turnout-testground-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]  # fmt: skip
    sans = ",".join([f"DNS:{name}" for name in dns] + [f"IP:{ip}" for ip in apiserver_ips])
    _leaf(pki, directory, "apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\n"
          "extendedKeyUsage=serverAuth\n")  # fmt: skip
    _leaf(pki, directory, "admin", "/O=system:masters/CN=turnout-admin", "extendedKeyUsage=clientAuth\n")
    _leaf(pki, directory, "front-proxy", "/CN=turnout-front-proxy", "extendedKeyUsage=clientAuth\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pki.service_account_key)
    _openssl("ec", "-in", pki.service_account_key, "-pubout", "-out", pki.service_account_pub)
    return pki


# P-256 keys: as good as RSA here and generated in milliseconds.
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _leaf(pki: ClusterPki, directory: Path, name: str, subject: str, extensions: str) -> None:
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" + extensions)
    _openssl("req", "-new", "-nodes", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", subject)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", pki.ca_key, "-CAcreateserial",
        "-days", _DAYS, "-extfile", ext, "-out", cert,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()


def _openssl(*args: str | Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")
