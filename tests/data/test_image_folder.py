"""Folders of images: flat and with class subfolders; unreadable files reported once and skipped,
up front or while reading, never a crash."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pygan.data import ImageFolderDataset, UnreadableImageWarning, folder_domains
from pygan.data.folder import check_image_folder, domain_folders


def _save(path, size=(20, 20), color=(200, 30, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    pixels = rng.integers(0, 255, (size[1], size[0], len(mode)), dtype=np.uint8)
    if mode != "L":  # noise around ``color``
        pixels[..., :3] = pixels[..., :3] // 4 + np.array(color, dtype=np.uint8) // 4 * 3
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(path)
    return path


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_flat_folder(tmp_path):
    _save(tmp_path / "a.png")
    _save(tmp_path / "b.jpg", size=(40, 25))
    _save(tmp_path / "c.bmp", size=(9, 30), mode="L")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"ignored")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = ImageFolderDataset(tmp_path, 16)
    assert d.layout == "flat" and len(d) == 3 and d.classes == [tmp_path.name]
    for i in range(3):
        x, label = d[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and label == 0
        assert -1 <= x.min() and x.max() <= 1
    assert ImageFolderDataset(tmp_path, 8, channels=1)[1][0].shape == (1, 8, 8)


def test_class_subfolders(tmp_path):
    _save(tmp_path / "cat" / "1.png")
    _save(tmp_path / "cat" / "2.png")
    _save(tmp_path / "dog" / "deep" / "3.jpg")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "readme.txt").write_text("no images here")
    _save(tmp_path / ".cache" / "x.png")
    d = ImageFolderDataset(tmp_path, 12)
    assert d.layout == "classes" and d.classes == ["cat", "dog"]
    assert [label for _, label in d.samples] == [0, 0, 1]
    assert d[2][1] == 1 and d[2][0].shape == (3, 12, 12)
    _save(tmp_path / "loose.png")
    with pytest.warns(UserWarning, match="directly in .* are ignored"):
        assert len(ImageFolderDataset(tmp_path, 12)) == 3
    assert len(ImageFolderDataset(tmp_path, 12, layout="flat")) == 4


def test_center_crop_and_transparency(tmp_path):
    # 30x10: left third red, middle green, right blue; the center crop must be green
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10, 0] = pixels[:, 10:20, 1] = pixels[:, 20:, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    d = ImageFolderDataset(tmp_path, 10)
    clear, wide = d[0][0], d[1][0]
    assert torch.equal(wide[:, :, 2:8], torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 10, 6))
    assert (clear == 1).all()  # composited onto white


def test_corrupt_files_are_reported_once_and_skipped(tmp_path):
    good = [_save(tmp_path / f"good{i}.png") for i in range(3)]
    (tmp_path / "junk.png").write_bytes(b"this is not a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    _truncate(_save(tmp_path / "truncated.png", size=(64, 64)))
    with pytest.warns(UnreadableImageWarning) as record:
        d = ImageFolderDataset(tmp_path, 8)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 3 unreadable image file(s) of 6" in message
    for name in ("junk.png", "empty.jpg", "truncated.png"):
        assert name in message
    assert sorted(p for p, _ in d.samples) == sorted(str(p) for p in good)
    assert len(d.skipped) == 3
    batch, _labels = next(iter(DataLoader(d, batch_size=3)))
    assert batch.shape == (3, 3, 8, 8)


def test_many_corrupt_files_list_only_the_first(tmp_path):
    _save(tmp_path / "ok.png")
    for i in range(8):
        (tmp_path / f"bad{i}.png").write_bytes(b"x")
    with pytest.warns(UnreadableImageWarning, match=r"(?s)skipped 8 .*… and 3 more"):
        ImageFolderDataset(tmp_path, 8)


def test_file_that_fails_while_reading_is_replaced_not_fatal(tmp_path):
    for i in range(4):
        _save(tmp_path / f"{i}.jpg", size=(64, 64))
    d = ImageFolderDataset(tmp_path, 8)  # header check passes
    _truncate(tmp_path / "1.jpg")  # breaks after the check (a truncated JPEG passes PIL's verify anyway)
    with pytest.warns(UnreadableImageWarning, match="1.jpg"):
        x, _ = d[1]
    assert torch.equal(x, d[2][0])  # the next readable image stands in
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once only
        images = torch.cat([b for b, _ in DataLoader(d, batch_size=2)])
    assert images.shape == (4, 3, 8, 8)


def test_decode_check_catches_truncated_jpeg_up_front(tmp_path):
    _save(tmp_path / "ok.jpg", size=(64, 64))
    _truncate(_save(tmp_path / "cut.jpg", size=(64, 64)))
    assert len(ImageFolderDataset(tmp_path, 8, check="header")) == 2
    with pytest.warns(UnreadableImageWarning, match="cut.jpg"):
        assert len(ImageFolderDataset(tmp_path, 8, check="decode")) == 1


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolderDataset(tmp_path / "missing", 8)
    with pytest.raises(ValueError, match="no readable images"):
        ImageFolderDataset(tmp_path, 8)
    (tmp_path / "bad.png").write_bytes(b"x")
    with pytest.warns(UnreadableImageWarning), pytest.raises(ValueError, match="no readable images"):
        ImageFolderDataset(tmp_path, 8)
    with pytest.raises(NotADirectoryError):
        ImageFolderDataset(tmp_path / "bad.png", 8)


def test_two_domain_folder(tmp_path):
    for i in range(3):
        _save(tmp_path / "trainA" / f"{i}.png", color=(250, 0, 0))
    for i in range(2):
        _save(tmp_path / "trainB" / "sub" / f"{i}.png", color=(0, 0, 250))
    domains = folder_domains(tmp_path, 8)
    assert (len(domains.a), len(domains.b)) == (3, 2)
    assert domains.pairs is None and domains.domain_names == ("trainA", "trainB")
    assert domains.a[0][0][0].mean() > domains.b[0][0][0].mean()  # A is the red one
    assert domain_folders(tmp_path, "test") is None            # no test split: None, not an error
    _save(tmp_path / "testA" / "x.png")
    with pytest.raises(ValueError, match="has testA/ but no testB/"):
        folder_domains(tmp_path, 8)                            # a half test split is refused up front
    _save(tmp_path / "testB" / "y.png")
    _save(tmp_path / "testB" / "z.png")
    test = folder_domains(tmp_path, 8, split="test")
    assert (len(test.a), len(test.b)) == (1, 2) and test.domain_names == ("testA", "testB")
    assert (len(folder_domains(tmp_path, 8).a), len(folder_domains(tmp_path, 8).b)) == (3, 2)


def test_two_plain_subfolders_are_a_and_b_in_name_order(tmp_path):
    _save(tmp_path / "zebras" / "1.png")
    _save(tmp_path / "horses" / "1.png")
    _save(tmp_path / "horses" / "2.png")
    d = folder_domains(tmp_path, 8)
    assert d.domain_names == ("horses", "zebras") and (len(d.a), len(d.b)) == (2, 1)
    assert domain_folders(tmp_path, "test") is None
    _save(tmp_path / "third" / "1.png")
    with pytest.raises(ValueError, match="exactly two subfolders"):
        folder_domains(tmp_path, 8)


@pytest.mark.parametrize("make, message", [
    (lambda r: _save(r / "trainA" / "1.png"), "has trainA/ but no trainB/"),
    (lambda r: _save(r / "trainB" / "1.png"), "has trainB/ but no trainA/"),
    (lambda r: (_save(r / "testA" / "1.png"), _save(r / "testB" / "1.png")), "no trainA/ and trainB/"),
    (lambda r: (_save(r / "trainA" / "1.png"), (r / "trainB").mkdir()), r"trainB holds no images"),
    (lambda r: (r / "notes.txt").write_text("x"), "found 0"),
])
def test_bad_two_domain_layouts_name_the_folder(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ValueError, match=message):
        domain_folders(tmp_path)


def test_check_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        check_image_folder(tmp_path / "missing")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no images"):
        check_image_folder(tmp_path)
    _save(tmp_path / "deep" / "1.png")
    assert check_image_folder(tmp_path) == str(tmp_path)
