"""formal/: the Coq proofs of T1–T3 compile, admit nothing, use only the expected axioms, and
state what formal/STATEMENTS.txt says.

The development is copied to a temporary folder and built there with coq_makefile + make, so no
build output lands in the repository. Under CI=true a missing coqc fails; elsewhere the tests
skip with the install command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FORMAL = Path(__file__).resolve().parent.parent / "formal"
INSTALL = (
    "Coq is not installed: apt-get install -y coq libcoq-mathcomp-analysis "
    "(Debian/Ubuntu), or opam install coq-mathcomp-analysis.0.6.0 elsewhere"
)
WARNINGS = ["-w", "-notation-overridden,-ambiguous-paths,-notation-incompatible-format"]
MAIN_THEOREMS = [
    "minor_rank",
    "certificate_heads",
    "certificate_patch_strided",
    "softmax_one_hot",
    "conv_layer_exact",
    "T3_block",
    "T3_heads",
    "T3_width",
    "T1_conv2d_zero",
    "T3_conv2d_zero",
    "T1_conv2d_circular",
    "T3_conv2d_circular",
    "circular_taps_distinct",
    "T3_conv2d_circular_merged",
    "flat_layout",
    "T2_patch_zero",
    "T3_patch_zero",
    "T2_patch_strided",
    "T3_patch_strided",
    "T2_patch_box",
    "T3_patch_box",
    "neighbourhood_axis",
    "nine_offsets_iff",
    "N_axis_size",
    "N_2d_product",
    "N_2d_size",
]
# The axioms of mathcomp-analysis's classical base (mathcomp.classical.boolp), and nothing else.
ANALYSIS_AXIOMS = [
    "boolp.constructive_indefinite_description",
    "boolp.functional_extensionality_dep",
    "boolp.propositional_extensionality",
]
EXPECTED_AXIOMS = {name: ANALYSIS_AXIOMS for name in MAIN_THEOREMS}
# Closed under the global context: these use no axiom at all.
CLOSED = ["minor_rank", "circular_taps_distinct", "flat_layout", "neighbourhood_axis",
          "nine_offsets_iff", "N_axis_size", "N_2d_product", "N_2d_size"]
for closed in CLOSED:
    EXPECTED_AXIOMS[closed] = []
FORBIDDEN = re.compile(
    r"\b(Admitted|admit|Axiom|Axioms|Parameter|Parameters|Hypothesis|Hypotheses|Conjecture)\b"
)


def _coqc() -> str:
    coqc = shutil.which("coqc")
    if coqc is None:
        if os.environ.get("CI") == "true":
            pytest.fail(INSTALL)
        pytest.skip(INSTALL)
    return coqc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a temporary copy of formal/ built with coq_makefile and make."""
    _coqc()
    work = tmp_path_factory.mktemp("formal") / "formal"
    outputs = shutil.ignore_patterns("*.vo", "*.vo?", "*.glob", ".*.aux", "CoqMakefile*")
    shutil.copytree(FORMAL, work, ignore=outputs)
    subprocess.run(["coq_makefile", "-f", "_CoqProject", "-o", "CoqMakefile"], cwd=work, check=True,
                   capture_output=True)
    make = subprocess.run(["make", "-f", "CoqMakefile"], cwd=work, capture_output=True, text=True)
    assert make.returncode == 0, make.stdout + make.stderr
    return work


def _run_coqc(work: Path, name: str) -> str:
    out = subprocess.run([_coqc(), *WARNINGS, "-Q", ".", "ConvAttn", name], cwd=work,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _without_comments(text: str) -> str:
    while "(*" in text:
        text = re.sub(r"\(\*(?:(?!\(\*|\*\)).)*\*\)", " ", text, flags=re.S)
    return text


def _sources() -> list[Path]:
    project = (FORMAL / "_CoqProject").read_text().split()
    return [FORMAL / f for f in project if f.endswith(".v")]


def test_every_file_of_the_coq_project_is_listed_and_none_is_missing() -> None:
    listed = {p.name for p in _sources()}
    present = {p.name for p in FORMAL.glob("*.v")} - {"Statements.v", "Assumptions.v"}
    assert listed == present


def test_no_source_admits_a_step_or_declares_an_axiom() -> None:
    for path in _sources():
        code = _without_comments(path.read_text())
        assert not FORBIDDEN.search(code), f"{path.name}: {FORBIDDEN.search(code).group(0)}"


def test_section_variables_occur_only_inside_sections() -> None:
    for path in _sources():
        depth = 0
        for line in _without_comments(path.read_text()).splitlines():
            word = line.split()[0] if line.split() else ""
            if word == "Section":
                depth += 1
            elif word == "End" and depth:
                depth -= 1
            elif word in {"Variable", "Variables", "Context"}:
                assert depth > 0, f"{path.name}: {line.strip()} outside a section"
        assert depth == 0, f"{path.name}: unclosed section"


def test_the_development_compiles_with_coqc(built: Path) -> None:
    for path in _sources():
        assert (built / path.with_suffix(".vo").name).exists(), path.name


def test_main_theorems_use_exactly_the_axioms_of_mathcomp_analysis(built: Path) -> None:
    shutil.copy(FORMAL / "Assumptions.v", built / "Assumptions.v")
    text = _run_coqc(built, "Assumptions.v")
    blocks = re.split(r"^(?=Axioms:|Closed under the global context)", text, flags=re.M)
    blocks = [b for b in blocks if b.strip()]
    assert len(blocks) == len(MAIN_THEOREMS), text
    for name, block in zip(MAIN_THEOREMS, blocks, strict=True):
        # axiom names start a line; their types continue on indented lines
        lines = block.splitlines()[1:]
        axioms = sorted(line.split()[0] for line in lines if line and not line[0].isspace())
        assert axioms == sorted(EXPECTED_AXIOMS[name]), (name, block)


def test_main_theorem_statements_equal_the_reviewed_copy(built: Path) -> None:
    shutil.copy(FORMAL / "Statements.v", built / "Statements.v")
    text = _run_coqc(built, "Statements.v")
    assert text.strip() == (FORMAL / "STATEMENTS.txt").read_text().strip()
