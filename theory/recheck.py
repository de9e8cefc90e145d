"""Reading certificates back: files, JSON text and `bounds`/`minimum` outputs, strictly.

Every object of a file must be a certificate, or a known wrapper that holds one — a
`bounds --json` record (`pixel`/`patch` entries), one of its entries, or a `minimum --json` row
(an object with a `certificate`). Anything else is rejected and named by its JSON path (`$[1]`,
`$.patch.certificate`), so nothing is skipped in silence. A certificate is an object, never a
file name: no string inside JSON is ever opened. The checks themselves are the stand-alone
checker's (`theory.checker.check`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from theory.checker import MAX_BYTES, CertificateError, check, text_limits

__all__ = ["certificates_in", "check_all", "read_file", "read_json", "summary_of"]

MAX_DIGITS = 320  # an integer longer than this is no certificate entry (the format's bound)
SHOWN = 80  # characters of unparsable text quoted in a message
MAX_FILE = 4 * MAX_BYTES  # bytes of a file read (a wrapper may hold several certificates)
_ENTRY = "a `bounds --json` entry or `minimum --json` row"


def _strict_pairs(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise CertificateError(f"duplicate key in an object with keys {sorted(set(keys))[:6]}")
    return dict(pairs)


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise CertificateError(f"an integer of {len(text)} digits: at most {MAX_DIGITS} allowed")
    return int(text)


def _constant(name: str) -> None:
    raise CertificateError(f"{name} is not allowed in a certificate")


def read_json(text: str, source: str) -> object:
    """Return the parsed JSON `text` (floats as Decimal, which no certificate may hold), or raise
    a `CertificateError` naming `source` and quoting at most 80 characters of bad text. A text
    that is one certificate keeps the stand-alone checker's text limits (`text_limits`)."""
    try:
        obj = json.loads(text, parse_float=Decimal, parse_int=_integer,
                         parse_constant=_constant, object_pairs_hook=_strict_pairs)  # fmt: skip
        if type(obj) is dict and "format" in obj:  # one certificate: the stand-alone limits
            text_limits(text)
        return obj
    except CertificateError:
        raise
    except RecursionError:
        raise CertificateError(f"{source}: JSON nested too deeply") from None
    except ValueError as err:
        shown = text.strip()[:SHOWN] + ("…" if len(text.strip()) > SHOWN else "")
        raise CertificateError(f"{source} is not JSON ({err}): {shown!r}") from None


def _is_certificate(obj: object) -> bool:
    return type(obj) is dict and "claim" in obj


CERTIFICATE_KEYS = {"claim", "certificate", "witness", "proof", "format"}


def _flat(value: object, path: str) -> None:
    """Raise if `value` (a record's data: numbers, lists, small objects such as a minimum) holds
    anything certificate-like, which would otherwise go unchecked."""
    stack = [(value, path)]
    while stack:
        v, p = stack.pop()
        if type(v) is dict:
            odd = [k for k in v if type(k) is not str or k.lower() in CERTIFICATE_KEYS]
            if odd:
                raise CertificateError(
                    f"{p}: an object with key {odd[0]!r} inside {_ENTRY}'s data; certificates "
                    "sit only under 'certificate', so it would go unchecked"
                )
            stack.extend((x, f"{p}.{k}") for k, x in list(v.items()))
        elif type(v) is list:
            stack.extend((x, f"{p}[{i}]") for i, x in enumerate(v))


def _json_type(v: object) -> str:
    """The JSON name of a parsed value's type: null, true/false, a number, a string, …"""
    if v is None or type(v) is bool:
        return json.dumps(v)
    names = {int: "an integer", Decimal: "a number with a fraction", float: "a float",
             str: "a string", list: "a list", dict: "an object"}  # fmt: skip
    return names.get(type(v), type(v).__name__)


def _entry(obj: dict, path: str) -> list[tuple[str, dict]]:
    """Return the certificate of an entry {…, "certificate": {…}}; its other values are data."""
    cert = obj["certificate"]
    where = f"{path}.certificate"
    if type(cert) is str:
        raise CertificateError(f"{where}: a certificate is a JSON object, never a file name")
    if not _is_certificate(cert):
        raise CertificateError(f"{where}: expected a certificate object, got {_json_type(cert)}")
    for key, value in list(obj.items()):
        if key != "certificate":
            _flat(value, f"{path}.{key}")
    return [(where, cert)]


def certificates_in(obj: object, path: str = "$") -> list[tuple[str, dict]]:
    """Return (JSON path, certificate) for every certificate in `obj`; reject anything else."""
    if type(obj) is list:
        if not obj:
            raise CertificateError(f"{path}: an empty list holds no certificate")
        return [c for i, item in enumerate(obj) for c in certificates_in(item, f"{path}[{i}]")]
    if _is_certificate(obj):
        return [(path, obj)]  # type: ignore[list-item]
    if type(obj) is dict and all(type(k) is str for k in obj):
        if "certificate" in obj:
            return _entry(obj, path)
        tokens = [t for t in ("pixel", "patch") if t in obj]
        if tokens:  # a bounds record: its entries hold the certificates
            found = []
            for key, value in list(obj.items()):
                if key in tokens:
                    if type(value) is not dict or "certificate" not in value:
                        raise CertificateError(
                            f"{path}.{key}: a bounds entry without a certificate (run bounds "
                            "with --certify)"
                        )
                    found += _entry(value, f"{path}.{key}")
                else:
                    _flat(value, f"{path}.{key}")
            return found
        keys = sorted(obj)[:6]
        raise CertificateError(f"{path}: an object with keys {keys} is neither a certificate "
                               f"(no 'claim') nor {_ENTRY}")  # fmt: skip
    raise CertificateError(f"{path}: expected a certificate object, got {_json_type(obj)}")


def check_all(obj: object, source: str) -> list[dict]:
    """Return the checker's report of every certificate in `obj`; a rejection names the path."""
    reports = []
    for path, cert in certificates_in(obj):
        try:
            reports.append(check(cert))
        except CertificateError as err:
            raise CertificateError(f"{source} {path}: {err}") from None
    return reports


def read_file(path: Path) -> object:
    """Return the parsed JSON of a file, or raise naming the file (binary, unreadable, not JSON)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)  # never more: a special file like /dev/zero stays cheap
    except OSError as err:
        raise CertificateError(f"cannot read {path}: {err.strerror or err}") from None
    if len(data) > MAX_FILE:
        raise CertificateError(f"{path}: more than {MAX_FILE:,} bytes (4 × the format's MAX_BYTES)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CertificateError(f"{path} is not UTF-8 text (a binary file?)") from None
    return read_json(text, str(path))


def summary_of(reports: list[dict]) -> str:
    """Return the one-line summary of several verified certificates."""
    if len(reports) == 1:
        return reports[0]["summary"]
    kinds = sorted({r["proof"] for r in reports})
    heads = sorted(r["heads"] for r in reports)
    counts = ", ".join(f"{sum(r['proof'] == k for r in reports)} {k}" for k in kinds)
    return (f"verified {len(reports)} certificates ({counts}): claims of {heads[0]} to "
            f"{heads[-1]} heads, every one holds")  # fmt: skip
