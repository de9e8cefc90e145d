"""A regression the checker's suite lacked: a Gordan relation with scale 0 proves nothing.

The certificate below is false: its two 3×3 channels [[1..9]] and [[9..1]] span 2 dimensions, so
the minimum is 2 heads, not 1. Relations `0·M_Δ = Σ 0·M_rows` hold for every offset, so only
the checker's scale check (scale ≠ 0) stands between it and acceptance. The checker is loaded
by path, as a reader would run it, sharing no code with the producer.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import pytest
import torch

from theory import minimum_heads

CHECKER = Path(__file__).resolve().parents[1] / "theory" / "checker.py"


def _checker():
    spec = importlib.util.spec_from_file_location("standalone_checker_scale", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scale_zero_certificate(scale: int) -> dict:
    w1 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    w2 = [[9, 8, 7], [6, 5, 4], [3, 2, 1]]
    others = [list(d) for d in itertools.product((-1, 0, 1), repeat=2) if d != (-1, -1)]
    return {
        "format": "conv-as-attention certificate v1",
        "claim": {"tokens": "pixel", "kernel_size": [3, 3], "patch_size": None,
                  "dilation": [1, 1], "groups": 1, "in_channels": 1, "out_channels": 2,
                  "heads": 1, "grid": None},
        "witness": [[w1], [w2]],
        "proof": {
            "kind": "gordan", "span_dim": 1,
            "minor": {"kind": "triangular", "rows": [[-1, -1]], "columns": [[0, 0, 0, 0, 0, 0]]},
            "relations": [{"row": d, "scale": scale, "coefficients": [0]} for d in others],
            "positive": [1], "obstruction": None,
        },
    }  # fmt: skip


def test_a_relation_with_scale_zero_is_rejected_by_its_scale_check() -> None:
    checker = _checker()
    with pytest.raises(checker.CertificateError, match=r"^proof\.relations\[0\]\.scale: must not"):
        checker.check(_scale_zero_certificate(0))


def test_the_same_relations_with_scale_one_fail_on_the_blocks_not_the_scale() -> None:
    checker = _checker()  # 1·M_Δ = 0 is false: the rejection comes from the blocks themselves
    with pytest.raises(checker.CertificateError, match=r"^proof\.relations\[0\]: Σ x_i"):
        checker.check(_scale_zero_certificate(1))


def test_fingerprinted_relations_accept_the_valid_and_reject_a_forged_relation(monkeypatch):
    checker = _checker()
    monkeypatch.setattr(checker, "EXACT_WORK", 0)  # force Freivalds' path on a small certificate
    w1, w2 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[9, 8, 7], [6, 5, 4], [3, 2, 1]]
    # channel 3 = channel 1 + channel 2; the producer's true certificate has relations to forge
    w3 = [[a + b for a, b in zip(r1, r2, strict=True)] for r1, r2 in zip(w1, w2, strict=True)]
    cert = _scale_zero_certificate(0)
    cert["claim"]["out_channels"] = 3  # channel 3 = channel 1 + channel 2: span 2 at most
    cert["witness"] = [[w1], [w2], [w3]]

    true = minimum_heads(torch.tensor([[w1], [w2], [w3]], dtype=torch.float64)).certificate.data
    assert checker.check(true)["heads"] == 2
    relations = [{**r, "coefficients": [x + 1 for x in r["coefficients"]]}
                 for r in true["proof"]["relations"]]  # fmt: skip
    forged = {**true, "proof": {**true["proof"], "relations": relations}}
    with pytest.raises(checker.CertificateError, match=r"fingerprint modulo \d+ is"):
        checker.check(forged)


# The format's size limits (README "Certificates"): each over-limit input is rejected naming
# the limit it hits. Limits on the text are lowered here so that the inputs stay small.
def _text(cert: dict) -> str:
    return json.dumps(cert, separators=(",", ":"))


@pytest.mark.parametrize(
    ("limit", "mark"), [("MAX_COMMAS", ","), ("MAX_LISTS", "["), ("MAX_OBJECTS", "{")]
)
def test_the_text_is_counted_before_parsing_and_each_count_is_named(monkeypatch, limit, mark):
    checker = _checker()
    text = _text(_scale_zero_certificate(1))
    monkeypatch.setattr(checker, limit, text.count(mark))
    with pytest.raises(checker.CertificateError, match=r"^proof\.relations\[0\]: Σ x_i"):
        checker.check(checker.parse(text))  # at the limit: parsed, and judged on its blocks
    monkeypatch.setattr(checker, limit, text.count(mark) - 1)
    with pytest.raises(checker.CertificateError, match=rf"more than {limit} = "):
        checker.parse(text)


def test_more_than_max_bytes_characters_is_rejected_unparsed(monkeypatch) -> None:
    checker = _checker()
    text = _text(_scale_zero_certificate(1))
    monkeypatch.setattr(checker, "MAX_BYTES", len(text) - 1)
    with pytest.raises(checker.CertificateError, match=r"more than MAX_BYTES = "):
        checker.parse(text)


def test_witness_limits_name_max_entries_and_max_dense(monkeypatch) -> None:
    checker = _checker()
    cert = _scale_zero_certificate(1)
    monkeypatch.setattr(checker, "MAX_DENSE", 17)  # the witness has 18 entries
    with pytest.raises(checker.CertificateError, match=r"MAX_DENSE = 17"):
        checker.check(cert)
    entries = [[o, 0, i, j, 1] for o in range(2) for i in range(3) for j in range(3)]
    cert["witness"] = {"shape": [2, 1, 3, 3], "entries": entries}
    monkeypatch.setattr(checker, "MAX_ENTRIES", 17)
    with pytest.raises(checker.CertificateError, match=r"MAX_ENTRIES = 17"):
        checker.check(cert)


def test_proof_limits_name_max_rows_and_max_coefficients(monkeypatch) -> None:
    checker = _checker()
    monkeypatch.setattr(checker, "MAX_COEFFICIENTS", 7)  # span 1 × 8 other rows of N
    with pytest.raises(checker.CertificateError, match=r"MAX_COEFFICIENTS = 7"):
        checker.check(_scale_zero_certificate(1))
    monkeypatch.setattr(checker, "MAX_ROWS", 8)  # N has 9 rows
    with pytest.raises(checker.CertificateError, match=r"MAX_ROWS = 8"):
        checker.check(_scale_zero_certificate(1))


def test_the_limits_admit_resnet18s_largest_layer_as_the_producer_writes_it() -> None:
    # 512 -> 512, 3x3, pixel tokens: a sparse witness of 512·512·9 entries [o, c, i, j, v],
    # each 5 numbers (4 commas inside, 1 after), one list; G has one non-zero per weight.
    checker = _checker()
    entries = 512 * 512 * 9
    assert entries <= checker.MAX_ENTRIES
    assert entries <= checker.MAX_NONZEROS
    assert 5 * entries + 2**10 <= checker.MAX_COMMAS
    assert entries + 2**10 <= checker.MAX_LISTS
    # a 3-D kernel at MAX_ENTRIES, 6 numbers an entry, also fits the comma count
    assert 6 * checker.MAX_ENTRIES + 2**10 <= checker.MAX_COMMAS


# The producer and `recheck` keep to the same limits: no certificate is written that the
# stand-alone checker would refuse, and no file is read past its bound.
def test_the_producer_refuses_a_witness_over_max_entries_and_convert_says_why(monkeypatch):
    import theory.certificates as certificates
    from theory.conversion import layer_theory

    conv = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)  # 144 non-zero weights
    monkeypatch.setattr(certificates, "DENSE_WITNESS_MAX", 0)  # write it as listed entries
    monkeypatch.setattr(certificates, "MAX_ENTRIES", 143)
    with pytest.raises(certificates.CertificateError, match=r"144 non-zero weights.*MAX_ENTRIES"):
        minimum_heads(conv)
    report = layer_theory("conv", conv, None)
    assert report["generic"] == 9
    assert "minimum" not in report
    assert "MAX_ENTRIES = 143" in report["note"]


def test_recheck_of_a_certificate_applies_the_text_limits_of_a_file(monkeypatch) -> None:
    import theory.checker as checker
    from theory import recheck

    cert = minimum_heads(torch.nn.Conv2d(2, 2, 3, padding=1, bias=False)).certificate
    text = cert.to_json()
    assert recheck(cert)["heads"] >= 1
    assert recheck(text)["heads"] >= 1
    monkeypatch.setattr(checker, "MAX_COMMAS", text.count(",") - 1)
    for given in (cert, text):  # the object and its text, as `theory recheck FILE` reads it
        with pytest.raises(checker.CertificateError, match=r"more than MAX_COMMAS"):
            recheck(given)


def test_recheck_reads_no_file_past_its_bound(monkeypatch, tmp_path) -> None:
    from theory import recheck

    reading = importlib.import_module("theory.recheck")  # the module, not theory.recheck()

    monkeypatch.setattr(reading, "MAX_FILE", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 1001)
    with pytest.raises(reading.CertificateError, match=r"big\.json: more than 1,000 bytes"):
        recheck(path)
    if Path("/dev/zero").exists():  # endless: read up to the bound, then refused
        with pytest.raises(reading.CertificateError, match=r"more than 1,000 bytes"):
            recheck(Path("/dev/zero"))
