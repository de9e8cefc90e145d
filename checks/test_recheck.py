"""`python -m theory recheck` and `theory.recheck`: one `rejected:` line or a TypeError, always.

Every input here once ended in a traceback, a silent skip or a file opened from inside JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from theory import certify_lower_bound, recheck
from theory.certificates import CertificateError
from theory.cli import main

VALID = certify_lower_bound(3, 2).data


def _rejected(tmp_path: Path, capsys, text: str | bytes, match: str) -> str:
    path = tmp_path / "input.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["recheck", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rejected: "), err
    assert match in err[0], err[0]
    assert "Traceback" not in err[0]
    return err[0]


NOT_CERTIFICATES = {
    "certificate-0": ('{"certificate": 0}', "$.certificate: expected a certificate object"),
    "null": ("null", "$: expected a certificate object, got null"),
    "true": ("true", "$: expected a certificate object, got true"),
    "list-of-int": ("[1]", "$[0]: expected a certificate object, got an integer"),
    "float": ("1.5", "$: expected a certificate object, got a number with a fraction"),
    "pixel-null": ('{"pixel": null, "patch": null}', "$.pixel: a bounds entry without"),
    "in-a-list": (json.dumps([VALID, None]), "$[1]: expected a certificate object, got null"),
    "huge-integer": ("1" * 5000, "an integer of 5000 digits"),
    "certificate-path": ('{"certificate": "/dev/zero"}', "never a file name"),
}


@pytest.mark.parametrize(("text", "match"), NOT_CERTIFICATES.values(), ids=NOT_CERTIFICATES)
def test_recheck_of_what_is_no_certificate_is_one_rejected_line(text, match, tmp_path, capsys):
    _rejected(tmp_path, capsys, text, match)


def test_a_misspelt_object_beside_a_valid_certificate_is_rejected_not_skipped(tmp_path, capsys):
    forged = {**VALID, "Claim": {**VALID["claim"], "heads_at_least": 1000}}
    del forged["claim"]
    _rejected(tmp_path, capsys, json.dumps([VALID, forged]), "$[1]: an object with keys")


def test_a_forged_certificate_inside_a_wrapper_is_named_by_its_path(tmp_path, capsys):
    nested = {"certificate": VALID, "patch": {"certificate": {**VALID, "witness": []}}}
    _rejected(tmp_path, capsys, json.dumps(nested), "$.patch")


def test_a_binary_file_is_rejected_naming_the_file(tmp_path, capsys):
    line = _rejected(tmp_path, capsys, bytes(range(256)), "is not UTF-8 text")
    assert "input.json" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_no_string_inside_json_is_ever_opened(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would hang: the rejection must come first
    _rejected(tmp_path, capsys, json.dumps({"certificate": str(fifo)}), "never a file name")


@pytest.mark.parametrize("value", [3, None, b"{}", [VALID], (VALID,), 1.5],
                         ids=["int", "None", "bytes", "list", "tuple", "float"])  # fmt: skip
def test_recheck_of_a_wrong_type_is_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^cert must be a Certificate"):
        recheck(value)


def test_text_that_is_not_json_is_never_a_file_name_and_is_quoted_briefly():
    text = "certificates/" + "x" * 200
    with pytest.raises(CertificateError, match=r"^the text is not JSON") as err:
        recheck(text)
    assert "x" * 81 not in str(err.value)


def test_valid_inputs_still_verify(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(VALID))
    assert recheck(path)["summary"].startswith("verified")
    assert recheck(json.dumps(VALID))["summary"].startswith("verified")
    assert recheck({"certificate": VALID})["summary"].startswith("verified")
