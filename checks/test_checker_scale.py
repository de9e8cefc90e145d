"""A regression the checker's suite lacked: a Gordan relation with scale 0 proves nothing.

The certificate below is false: its two 3×3 channels [[1..9]] and [[9..1]] span 2 dimensions, so
the minimum is 2 heads, not 1. Relations `0·M_Δ = Σ 0·M_rows` hold for every offset, so only
the checker's scale check (scale ≠ 0) stands between it and acceptance. The checker is loaded
by path, as a reader would run it, sharing no code with the producer.
"""

from __future__ import annotations

import importlib.util
import itertools
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
