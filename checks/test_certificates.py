"""Lower-bound certificates (T3): every one the toolkit prints re-checks, every forgery is rejected.

The producer is `theory.certificates`; the checker the stand-alone `theory/checker.py`. The truth
of a claim is decided here by a third route: the rank of the stacked blocks M_Δ that
`constructions.blocks` builds, in exact rationals (sympy's DomainMatrix).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from checks.strategies import ConvCaseND, conv_cases_nd
from constructions.blocks import patch_blocks
from theory import CertificateError, certify_lower_bound, head_bounds, heads_necessary, recheck
from theory.cli import main
from theory.exact import rank_domainmatrix


def _true_rank(cert: dict) -> int | None:
    """Return rank [vec M_Δ]_Δ of the certificate's witness (None if the witness is malformed)."""
    claim, witness = cert["claim"], cert["witness"]
    try:
        if isinstance(witness, dict):
            w = np.zeros(witness["shape"], dtype=np.int64)
            for *index, value in witness["entries"]:
                w[tuple(index)] = value
        else:
            w = np.array(witness, dtype=np.int64)
        P = claim["patch_size"] or [1] * len(claim["kernel_size"])
        blocks = patch_blocks(torch.from_numpy(w), tuple(P), claim["groups"],
                              tuple(claim["dilation"]))[1]  # fmt: skip
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, OverflowError):
        return None
    return rank_domainmatrix(blocks.reshape(len(blocks), -1).numpy())


def _claim_is_true(cert: dict) -> bool:
    claim = cert.get("claim")
    if not isinstance(claim, dict) or "heads_at_least" not in claim:
        return False
    if (claim.get("tokens") == "pixel") != (claim.get("patch_size") is None):
        return False
    rank = _true_rank(cert)
    w = cert["witness"]
    shape = tuple(w["shape"]) if isinstance(w, dict) else np.shape(w)
    expected = (claim["out_channels"], claim["in_channels"] // claim["groups"],
                *claim["kernel_size"])  # fmt: skip
    return rank is not None and shape == expected and rank >= claim["heads_at_least"]


def _certificate(case: ConvCaseND, pixel: bool) -> dict:
    return certify_lower_bound(
        case.kernel_size, None if pixel else case.patch_size, dilation=case.dilation,
        in_channels=case.in_channels, out_channels=case.out_channels, groups=case.groups,
    ).data  # fmt: skip


@settings(max_examples=30)
@given(case=conv_cases_nd(max_kernel=3, max_patch=2), pixel=st.booleans())
def test_every_certificate_of_a_random_shape_rechecks_and_states_a_true_claim(case, pixel) -> None:
    cert = _certificate(case, pixel)
    report = recheck(json.loads(json.dumps(cert)))
    assert report["summary"].startswith("verified")
    assert _true_rank(cert) == cert["claim"]["heads_at_least"]
    bounds = head_bounds(case.kernel_size, None if pixel else case.patch_size,
                         dilation=case.dilation, in_channels=case.in_channels,
                         out_channels=case.out_channels, groups=case.groups)  # fmt: skip
    assert cert["claim"]["heads_at_least"] == bounds.span_dim


def _mutations(cert: dict) -> st.SearchStrategy:
    """Draw a forgery: one field perturbed, relabelled, retyped or truncated."""
    paths = []

    def walk(node: object, path: tuple) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list) and len(node) <= 12:
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(cert, ())
    changes = st.sampled_from([
        lambda v: v + 1 if type(v) is int else v,
        lambda v: v - 1 if type(v) is int else v,
        lambda v: float(v) if type(v) is int else v,
        lambda v: str(v),
        lambda v: bool(v) if type(v) is int else v,
        lambda v: v[:-1] if isinstance(v, list) and v else v,
        lambda v: [*v, v[-1]] if isinstance(v, list) and v else v,
        lambda v: None,
        lambda v: 0 if type(v) is int else v,
        lambda v: "pixel" if v == "patch" else ("patch" if v == "pixel" else v),
        lambda v: {**v, "extra": 1} if isinstance(v, dict) else v,
    ])  # fmt: skip
    return st.tuples(st.sampled_from(paths[1:]), changes)


def _apply(cert: dict, path: tuple, change) -> dict:
    forged = copy.deepcopy(cert)
    node = forged
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = change(node[path[-1]])
    return forged


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases_nd(dims=(1, 2), max_kernel=3, max_patch=2), pixel=st.booleans(),
       data=st.data())  # fmt: skip
def test_the_checker_accepts_a_forged_certificate_only_if_its_claim_is_true(
    case, pixel, data
) -> None:
    cert = _certificate(case, pixel)
    path, change = data.draw(_mutations(cert), label="mutation")
    forged = _apply(cert, path, change)
    try:
        recheck(forged)
    except CertificateError:
        return
    assert _claim_is_true(forged), f"accepted a false claim: {path}"


def test_a_patch_certificate_relabelled_pixel_is_rejected() -> None:
    cert = certify_lower_bound(3, 2).data  # P = 2, k = 3, C = D = 1: 9 heads
    forged = copy.deepcopy(cert)
    forged["claim"]["tokens"], forged["claim"]["patch_size"] = "pixel", None
    with pytest.raises(CertificateError):
        recheck(forged)
    assert heads_necessary(3) == 1  # the relabelled claim is false: a pixel 3×3 needs one head


def test_a_rank_deficient_witness_is_rejected() -> None:
    # pixel 3×3, C = D = 3: s = 9, a dense witness; copy tap (0, 0) onto tap (2, 2), so
    # M_(1,1) = M_(−1,−1) and the rank drops to 8 while the claim still says 9
    cert = certify_lower_bound(3, in_channels=3, out_channels=3).data
    forged = copy.deepcopy(cert)
    for out in forged["witness"]:
        for tap in out:
            tap[2][2] = tap[0][0]
    assert _true_rank(cert) == 9 and _true_rank(forged) == 8
    with pytest.raises(CertificateError):
        recheck(forged)


@pytest.mark.parametrize(
    ("argv", "bound"),
    [
        (["--kernel-size", "63", "--patch-size", "32", "--in-channels", "63",
          "--out-channels", "63"], {"pixel": 3969, "patch": 9}),
        (["--kernel-size", "3,65", "--patch-size", "32", "--in-channels", "3",
          "--out-channels", "64"], {"patch": 9}),
        (["--kernel-size", "3", "--patch-size", "16", "--in-channels", "768",
          "--out-channels", "768"], {"pixel": 9, "patch": 9}),
        (["--kernel-size", "3x3x3", "--patch-size", "2x16x16", "--in-channels", "3",
          "--out-channels", "8"], {"pixel": 24, "patch": 27}),  # pixel: min(27, C·D = 24)
    ],
    ids=["pixel-k63-C63", "patch-P32-k3-k65", "patch-P16-C768", "tubelet"],
)  # fmt: skip
def test_scale_cases_certify_and_recheck_through_the_cli(argv, bound, tmp_path, capsys) -> None:
    out = tmp_path / "bounds.json"
    assert main(["bounds", *argv, "--certify", "--json",
                 "--certificates", str(tmp_path / "certs")]) == 0  # fmt: skip
    out.write_text(capsys.readouterr().out)
    records = json.loads(out.read_text())
    for record in records if isinstance(records, list) else [records]:
        for tokens, n in bound.items():
            assert record[tokens]["certificate"]["claim"]["heads_at_least"] == n
    assert main(["recheck", str(out)]) == 0
    assert capsys.readouterr().out.startswith("verified")
    for path in sorted((tmp_path / "certs").iterdir()):
        assert main(["recheck", str(path)]) == 0
        assert capsys.readouterr().out.startswith("verified: ")


def test_python_m_theory_recheck_rejects_a_forged_file_without_a_traceback(tmp_path) -> None:
    cert = certify_lower_bound(5, 16, in_channels=8, out_channels=8).data
    cert["claim"]["heads_at_least"] += 1
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(cert))
    proc = subprocess.run([sys.executable, "-m", "theory", "recheck", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("rejected: ") and len(proc.stderr.strip().splitlines()) == 1


def test_certificates_of_float_and_bfloat16_kernels_are_exact() -> None:
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        conv = nn.Conv2d(2, 2, 3, padding="same", dtype=dtype)
        cert = certify_lower_bound(kernel=conv, patch_size=2)
        assert recheck(cert)["summary"].startswith("verified")
        assert cert.bound == head_bounds(kernel=conv, patch_size=2).span_dim == 9


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        (nn.Conv2d(1, 1, 3, stride=2), r"^conv.padding=\(0, 0\) with kernel_size=\(3, 3\), "
         r"stride=\(2, 2\).*padding=1 gives n/2 outputs"),
        (nn.Conv2d(1, 1, 3),
         r"^conv.padding=\(0, 0\) with kernel_size=\(3, 3\), stride=\(1, 1\)"),
        (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"),
         r"^conv.padding_mode='reflect': only 'zeros' and 'circular'"),
    ],
    ids=["stride-2-valid", "padding-0", "reflect"],
)  # fmt: skip
def test_the_theory_rejects_what_the_constructions_reject(conv, message) -> None:
    for call in (heads_necessary, lambda kernel: certify_lower_bound(kernel=kernel)):
        with pytest.raises(ValueError, match=message):
            call(kernel=conv)
