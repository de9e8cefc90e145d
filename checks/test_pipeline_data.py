"""Data for the pipeline (pipeline.data): the CIFAR pickle reader, digits, the low-data subset."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data import load_cifar, load_dataset, load_digits, subsample


def write_cifar(root: Path, name: str, per_batch: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny CIFAR folder in the official layout; return the arrays that went in."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, files, key, classes = root / "cifar-10-batches-py", \
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 10
    else:
        folder, files, key, classes = root / "cifar-100-python", ["train", "test"], \
            b"fine_labels", 100
    folder.mkdir(parents=True)
    written = {}
    for f in files:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = (np.arange(per_batch) + len(written)) % classes
        batch = {b"batch_label": f.encode(), key: labels.tolist(), b"data": data,
                 b"filenames": [b"x.png"] * per_batch}
        if name == "cifar100":
            batch[b"coarse_labels"] = (labels // 5).tolist()
        (folder / f).write_bytes(pickle.dumps(batch, protocol=2))
        written[f] = data
        written[f + ".labels"] = labels
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reader_returns_the_pickled_images_channel_first(tmp_path: Path, name: str) -> None:
    written = write_cifar(tmp_path, name)
    data = load_cifar(name, tmp_path)
    train_files = [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"]
    test_file = "test_batch" if name == "cifar10" else "test"
    first = written[train_files[0]][0]
    # The release stores each row as 1024 red, then 1024 green, then 1024 blue values, row-major.
    assert int(data.train_x[0, 1, 2, 3]) == int(first[1024 + 2 * 32 + 3])
    assert int(data.train_x[0, 2, 31, 31]) == int(first[3071])
    assert data.train_x.shape == (6 * len(train_files), 3, 32, 32)
    assert data.train_x.dtype == torch.uint8
    expected_labels = np.concatenate([written[f + ".labels"] for f in train_files])
    assert data.train_y.tolist() == expected_labels.tolist()
    assert data.test_y.tolist() == written[test_file + ".labels"].tolist()
    assert data.num_classes == (10 if name == "cifar10" else 100)
    # data_dir may also be the release folder itself
    assert torch.equal(load_cifar(name, next(tmp_path.iterdir())).test_x, data.test_x)


def test_normalised_training_images_have_zero_mean_and_unit_std_per_channel(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10", per_batch=20)
    data = load_cifar("cifar10", tmp_path)
    x = data.normalise(data.train_x).double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize(("name", "folder", "files"), [
    ("cifar10", "cifar-10-batches-py", r"\['data_batch_1', .*'test_batch'\]"),
    ("cifar100", "cifar-100-python", r"\['train', 'test'\]"),
])
def test_a_missing_cifar_folder_names_the_folder_and_the_expected_files(
    tmp_path: Path, name: str, folder: str, files: str
) -> None:
    with pytest.raises(FileNotFoundError, match=rf"^dataset='{name}': no CIFAR files in "
                       rf"data_dir=.*Expected the folder '.*{folder}' with the files {files}"
                       r".*Nothing is downloaded"):
        load_cifar(name, tmp_path / "nowhere")


def test_a_partly_missing_cifar_folder_lists_the_missing_files(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: \['data_batch_3'\]"):
        load_cifar("cifar10", tmp_path)


def test_a_cifar_pickle_that_would_call_anything_but_numpy_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar100")
    (tmp_path / "cifar-100-python" / "test").write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(pickle.UnpicklingError, match=r"^refusing to load collections\.OrderedDict"):
        load_cifar("cifar100", tmp_path)


def test_cifar_needs_a_data_dir_and_unknown_datasets_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"^dataset='cifar10' is read from local files: pass "
                       r"data_dir"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match=r"^dataset='mnist': expected one of \('digits', "
                       r"'cifar10', 'cifar100', 'imagefolder'\)"):
        load_dataset("mnist")


def test_digits_split_is_stratified_disjoint_and_complete() -> None:
    from sklearn.datasets import load_digits as sk_digits

    data = load_digits()
    assert data.image_shape == (1, 8, 8) and data.num_classes == 10 and data.max_value == 16
    assert len(data.train_y) + len(data.test_y) == 1797
    counts = torch.bincount(data.test_y, minlength=10)
    assert int(counts.min()) >= 85  # about half of each class (~180 per class)
    # every sklearn image appears exactly once across the split
    everything = torch.cat([data.train_x, data.test_x]).reshape(-1, 64).numpy()
    reference = sk_digits().images.reshape(-1, 64).astype(np.uint8)
    as_rows = lambda a: sorted(map(bytes, a))  # noqa: E731
    assert as_rows(everything) == as_rows(reference)


def test_subsample_is_class_balanced_deterministic_and_keeps_the_test_set() -> None:
    data = load_digits()
    small = subsample(data, 300)
    assert torch.bincount(small.train_y, minlength=10).tolist() == [30] * 10
    assert torch.equal(subsample(data, 300).train_x, small.train_x)
    assert not torch.equal(subsample(data, 300, seed=1).train_x, small.train_x)
    assert torch.equal(small.test_x, data.test_x)
    assert subsample(data, None) is data
    with pytest.raises(ValueError, match=r"^train_size=5000 exceeds the \d+ training images"):
        subsample(data, 5000)
