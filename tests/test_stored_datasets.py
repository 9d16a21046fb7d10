"""Datasets read from official files (Shapes3D, MPI3D, smallNORB, Cars3D): files written
here in the official layout (same keys, dtypes, axis and row order; fewer images where the
format allows) are read back row by row; broken files get one line and exit code 2."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from disentangle.cli import main
from disentangle.download import fetch_file, partial_path
from disentangle.errors import UsageError
from disentangle_plugins.datasets import mpi3d, shapes3d, smallnorb, stored
from disentangle_plugins.datasets.cars3d import Cars3D
from disentangle_plugins.datasets.mpi3d import MPI3DToy
from disentangle_plugins.datasets.shapes3d import Shapes3D
from disentangle_plugins.datasets.smallnorb import SmallNORB

h5py = pytest.importorskip("h5py", reason="h5py (the hdf5 extra) writes the test files")

#: (factor row, seed of its image) of the images a test file holds
SHAPES_ROWS = [((0, 0, 0, 0, 0, 0), 1), ((9, 9, 9, 7, 3, 14), 2), ((3, 1, 4, 1, 2, 6), 3)]


def random_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def write_shapes3d(path: Path, labels: np.ndarray | None = None, extra: bool = False,
                   images_shape: tuple[int, ...] | None = None) -> Path:
    """A 3dshapes.h5 in the official layout: the full 480,000-row arrays, images chunked
    by row and compressed so that the rows never written cost nothing on disk."""
    n = 480_000
    with h5py.File(path, "w") as file:
        images = file.create_dataset("images", images_shape or (n, 64, 64, 3), np.uint8,
                                     chunks=(1, 64, 64, 3), compression="gzip")
        if images_shape is None:
            for factors, seed in SHAPES_ROWS:
                images[Shapes3D.index(Shapes3D, np.array([factors]))[0]] = random_image(seed)
        file.create_dataset("labels", data=shapes3d.grid_values(Shapes3D.factor_sizes)
                            if labels is None else labels, compression="gzip")
        if extra:
            file.create_dataset("notes", data=np.zeros(3))
    return path


@pytest.fixture(scope="module")
def shapes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes3d(tmp_path_factory.mktemp("shapes") / "3dshapes.h5")


def test_shapes3d_reads_the_official_file_row_by_row(shapes_file: Path):
    ds = Shapes3D(shapes_file)
    factors = np.array([f for f, _ in SHAPES_ROWS])
    images = ds.images(factors[[1, 0, 2, 1]])  # any order, repeats
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    for image, (_, seed) in zip(images, [SHAPES_ROWS[k] for k in (1, 0, 2, 1)]):
        expected = torch.from_numpy(random_image(seed)).permute(2, 0, 1).float() / 255
        assert torch.equal(image, expected)
    rows = ds.index(factors)
    assert rows.tolist() == [0, 479_999, ((((3 * 10 + 1) * 10 + 4) * 8 + 1) * 4 + 2) * 15 + 6]
    assert np.array_equal(ds.factors_of(rows), factors)
    batch, drawn = ds.sample(8, np.random.default_rng(0))
    assert batch.shape == (8, 3, 64, 64) and drawn.shape == (8, 6)


class TinyShapes(Shapes3D):
    """Shapes3D's layout on a grid of 2 x 2 x 2 x 2 x 2 x 3 = 96 rows."""

    factor_sizes = (2, 2, 2, 2, 2, 3)


def test_shapes3d_compressed_in_chunks_of_many_images_is_unpacked_once(tmp_path: Path):
    images = np.random.default_rng(5).integers(0, 256, (96, 64, 64, 3), dtype=np.uint8)
    path = tmp_path / "3dshapes.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("images", data=images, chunks=(32, 64, 64, 3), compression="gzip")
        file.create_dataset("labels", data=shapes3d.grid_values(TinyShapes.factor_sizes))
    ds = TinyShapes(path)
    assert isinstance(ds.array, stored.RowFile)
    assert (tmp_path / "3dshapes.h5.images.npy").is_file()
    factors = ds.factors_of(np.array([95, 3, 40]))
    expected = torch.from_numpy(images[[95, 3, 40]]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(ds.images(factors), expected)
    assert torch.equal(TinyShapes(path).images(factors), expected)  # the cache is reused


def test_shapes3d_found_in_its_folder_of_the_data_folder(shapes_file: Path, tmp_path: Path):
    (tmp_path / "shapes3d").mkdir()
    (tmp_path / "shapes3d" / "3dshapes.h5").symlink_to(shapes_file)
    assert Shapes3D(tmp_path).path == tmp_path / "shapes3d" / "3dshapes.h5"


def test_a_missing_file_names_the_fetch_command_and_the_path(workdir: Path, capsys):
    code = main(["run", "beta_vae", "--dataset", "shapes3d", "--data-dir", str(workdir),
                 "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == (f"error: dataset 'shapes3d' needs {workdir}/shapes3d/3dshapes.h5: download "
                   f"it with `disentangle data fetch shapes3d --data-dir {workdir}` (or point "
                   f"--data-dir at the file)")


def bad_shapes_files(folder: Path) -> list[tuple[Path, str]]:
    good_labels = shapes3d.grid_values(Shapes3D.factor_sizes)
    swapped = good_labels.copy()
    swapped[[0, 14]] = swapped[[14, 0]]
    truncated = folder / "truncated.h5"
    data = write_shapes3d(folder / "whole.h5").read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    missing = folder / "missing.h5"
    with h5py.File(missing, "w") as file:
        file.create_dataset("images", (480_000, 64, 64, 3), np.uint8, chunks=(1, 64, 64, 3))
    return [
        (truncated, "not a readable HDF5 file"),
        (write_shapes3d(folder / "extra.h5", extra=True),
         "expected the datasets images, labels; unexpected notes"),
        (missing, "expected the datasets images, labels; missing labels"),
        (write_shapes3d(folder / "small.h5", images_shape=(10, 64, 64, 3)),
         "'images' must be uint8 [480000, 64, 64, 3], found uint8 [10, 64, 64, 3]"),
        (write_shapes3d(folder / "order.h5", labels=swapped),
         "'labels' row 0 is [0.0, 0.0, 0.0, 0.75, 0.0, 30.0], the official grid has "
         "[0.0, 0.0, 0.0, 0.75, 0.0, -30.0] there: not the official row order"),
    ]


def test_broken_shapes3d_files_get_one_line_and_exit_code_2(workdir: Path, capsys):
    for path, message in bad_shapes_files(workdir):
        with pytest.raises(UsageError, match=r"^" + str(path).replace(".", r"\.")):
            Shapes3D(path)
        assert main(["run", "vae", "--dataset", "shapes3d", "--data-dir", str(path),
                     "--steps", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {path}: ") and message in err and "\n" not in err


# -- MPI3D: the format allows fewer images, so the grid is shrunk --------------------------

class TinyMPI3D(MPI3DToy):
    """MPI3D-toy's file layout on a grid of 2 x 2 x 1 x 1 x 1 x 3 x 4 = 48 rows."""

    factor_sizes = (2, 2, 1, 1, 1, 3, 4)


def tiny_images() -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("compressed", [False, True])
def test_mpi3d_reads_the_official_npz_by_rows(tmp_path: Path, compressed: bool):
    images = tiny_images()
    path = tmp_path / "mpi3d_toy.npz"
    (np.savez_compressed if compressed else np.savez)(path, images=images)
    ds = TinyMPI3D(tmp_path)
    assert ds.path == path and isinstance(ds.array, stored.RowFile)
    cache = tmp_path / "mpi3d_toy.npz.images.npy"
    assert cache.is_file() == compressed  # a compressed member is unpacked once, beside it
    factors = ds.factors_of(np.array([47, 0, 13]))
    assert factors.tolist() == [[1, 1, 0, 0, 0, 2, 3], [0] * 7, [0, 1, 0, 0, 0, 0, 1]]
    expected = torch.from_numpy(images[[47, 0, 13]]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(ds.images(factors), expected)
    assert np.array_equal(ds.index(factors), [47, 0, 13])
    if compressed:
        assert torch.equal(TinyMPI3D(tmp_path).images(factors), expected)  # from the cache


def bad_npz_files(folder: Path) -> list[tuple[Path, str]]:
    images = tiny_images()
    cut = folder / "cut.npz"
    np.savez(cut, images=images)
    cut.write_bytes(cut.read_bytes()[:100_000])
    renamed = folder / "renamed.npz"
    np.savez(renamed, imgs=images)
    small = folder / "small.npz"
    np.savez(small, images=images[:40])
    pickled = folder / "pickled.npz"
    np.savez(pickled, images=np.array([{"x": 1}], dtype=object))
    return [
        (cut, "not an .npz archive (the file is corrupt or truncated"),
        (renamed, "no array 'images' (found imgs)"),
        (small, "'images' must be uint8 [48, 64, 64, 3], found uint8 [40, 64, 64, 3]"),
        (pickled, "'images' holds pickled Python objects"),
    ]


def test_broken_npz_files_are_refused_with_one_line(tmp_path: Path):
    for path, message in bad_npz_files(tmp_path):
        with pytest.raises(UsageError) as info:
            TinyMPI3D(path)
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_an_npz_cut_inside_its_array_is_refused(tmp_path: Path):
    path = tmp_path / "mpi3d_toy.npz"
    np.savez(path, images=tiny_images())
    with zipfile.ZipFile(path) as archive:  # keep the directory, drop the array's tail
        info = archive.getinfo("images.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 200_000
    cut = tmp_path / "cut" / "mpi3d_toy.npz"
    cut.parent.mkdir()
    cut.write_bytes(bytes(data[:start]) + bytes(data[info.header_offset + info.file_size
                                                     + 100:]))
    with pytest.raises(UsageError, match="truncated|not an .npz"):
        TinyMPI3D(cut)


# -- downloads ------------------------------------------------------------------------------

@dataclass
class Served:
    """A file served on the loopback interface by a server that honours range requests,
    and the Range header of every request it got."""

    url: str
    payload: bytes
    digest: str
    requests: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter((self.url, self.payload, self.digest))


@pytest.fixture
def served_file():
    payload = np.random.default_rng(7).bytes(400_000)
    served = Served("", payload, hashlib.md5(payload).hexdigest())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked = self.headers.get("Range") or ""
            served.requests.append(asked)
            start = int(asked.split("=")[1].split("-")[0]) if asked else 0
            self.send_response(206 if asked else 200)
            if asked:
                self.send_header("Content-Range",
                                 f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_port}/3dshapes.h5"
    yield served
    server.shutdown()
    server.server_close()


def test_fetch_resumes_a_cut_download_and_tries_the_alternatives(tmp_path: Path, served_file,
                                                                   monkeypatch):
    url, payload, digest = served_file
    dest = tmp_path / "data" / "shapes3d" / "3dshapes.h5"
    dest.parent.mkdir(parents=True)
    partial_path(dest).write_bytes(payload[:123_456])  # what a cut download left
    monkeypatch.setattr(shapes3d, "URLS", ("http://127.0.0.1:1/gone", url))
    monkeypatch.setattr(shapes3d, "MD5", digest)
    assert main(["data", "fetch", "shapes3d", "--data-dir", str(tmp_path / "data")]) == 0
    assert dest.read_bytes() == payload and not partial_path(dest).exists()
    assert served_file.requests[-1] == "bytes=123456-"  # only the rest was asked for
    # a file already there with the right checksum is kept, with no address reachable
    monkeypatch.setattr(shapes3d, "URLS", ("http://127.0.0.1:1/gone",))
    assert main(["data", "fetch", "shapes3d", "--data-dir", str(tmp_path / "data")]) == 0


def test_fetch_with_no_address_that_answers_names_them_all(tmp_path: Path):
    with pytest.raises(UsageError, match="could not fetch x.npz for mpi3d_toy: cannot "
                                         "download http://127.0.0.1:1/a.*http://127.0.0.1:1/b"):
        fetch_file("mpi3d_toy", ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"],
                   tmp_path / "x.npz", None)
    assert mpi3d.ADDRESSES and not list(tmp_path.iterdir())


# -- smallNORB: NORB matrix files with fewer pairs, as the format allows --------------------

class TinyNORB(SmallNORB):
    """smallNORB's files on a grid of 2 categories x 2 elevations x 3 azimuths x 2
    lightings: 24 combinations, 5 instances in each file (120 pairs per file)."""

    factor_sizes = (2, 2, 3, 2)
    pairs = 120


def write_matrix(path: Path, array: np.ndarray) -> None:
    """A NORB binary matrix file (gzipped): magic, ndim, dims padded to 3, data."""
    magic = {np.dtype(np.uint8): 0x1E3D4C55, np.dtype(np.int32): 0x1E3D4C54}[array.dtype]
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], dtype="<u4").tobytes()
    with gzip.open(path, "wb") as out:
        out.write(header + array.astype(array.dtype.newbyteorder("<")).tobytes())


def write_norb(folder: Path) -> dict[tuple[int, ...], list[np.ndarray]]:
    """The six files of TinyNORB; returns the left images of each factor combination."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    shown: dict[tuple[int, ...], list[np.ndarray]] = {}
    for prefix, instances in zip(smallnorb.PREFIXES, ((4, 6, 7, 8, 9), (0, 1, 2, 3, 5))):
        grid = np.array(np.meshgrid(range(2), instances, range(2), range(3), range(2),
                                    indexing="ij")).reshape(5, -1).T
        grid = grid[rng.permutation(len(grid))]  # the files are not in grid order
        pixels = rng.integers(0, 256, (len(grid), 2, 96, 96), dtype=np.uint8)
        write_matrix(folder / f"{prefix}-dat.mat.gz", pixels)
        write_matrix(folder / f"{prefix}-cat.mat.gz", grid[:, 0].astype(np.int32))
        info = np.stack([grid[:, 1], grid[:, 2], 2 * grid[:, 3], grid[:, 4]], axis=1)
        write_matrix(folder / f"{prefix}-info.mat.gz", info.astype(np.int32))
        for row, image in zip(grid, pixels[:, 0]):
            shown.setdefault((row[0], row[2], row[3], row[4]), []).append(image)
    return shown


def test_smallnorb_reads_the_official_matrix_files(tmp_path: Path):
    shown = write_norb(tmp_path / "smallnorb")
    ds = TinyNORB(tmp_path)
    assert ds.image_shape == (1, 64, 64) and not ds.deterministic
    assert (tmp_path / "smallnorb" / "smallnorb-64x64.npy").is_file()
    factors = np.array([[0, 0, 0, 0], [1, 1, 2, 1], [1, 0, 1, 0]])
    images = ds.images(factors, np.random.default_rng(0))
    assert images.shape == (3, 1, 64, 64)
    for image, row in zip(images, factors):
        candidates = [stored.resized(im[None])[0] for im in shown[tuple(row)]]
        assert len(candidates) == 10  # one image per instance
        assert any(np.array_equal((image[0] * 255).round().byte().numpy(), c)
                   for c in candidates)
    drawn = {ds.images(factors[:1], np.random.default_rng(s))[0].sum().item()
             for s in range(30)}
    assert len(drawn) > 3  # the instance is drawn at random
    with pytest.raises(ValueError, match="needs an rng"):
        ds.images(factors)


def test_broken_smallnorb_files_are_refused_with_one_line(tmp_path: Path):
    write_norb(tmp_path / "smallnorb")
    dat = tmp_path / "smallnorb" / f"{smallnorb.PREFIXES[1]}-dat.mat.gz"
    whole = dat.read_bytes()
    dat.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(UsageError, match=f"^{dat}: (truncated|cannot be read)"):
        TinyNORB(tmp_path)
    dat.write_bytes(whole)
    cat = tmp_path / "smallnorb" / f"{smallnorb.PREFIXES[0]}-cat.mat.gz"
    write_matrix(cat, np.zeros(120, np.uint8))
    with pytest.raises(UsageError, match=r"must be int32 \[120\], found uint8 \[120\]"):
        TinyNORB(tmp_path)
    with gzip.open(cat, "wb") as out:
        out.write(b"\x00" * 64)
    with pytest.raises(UsageError, match="not a NORB matrix file"):
        TinyNORB(tmp_path)
    cat.unlink()
    with pytest.raises(UsageError, match=f"needs {tmp_path}/smallnorb/{cat.name}: download"):
        TinyNORB(tmp_path)


# -- Cars3D: fewer car files, as the release allows ----------------------------------------

class TinyCars(Cars3D):
    """Cars3D's files for 3 cars."""

    factor_sizes = (4, 24, 3)


def write_cars(folder: Path) -> list[np.ndarray]:
    """Three car_*_mesh.mat files; returns each car's ``im`` array."""
    folder.mkdir(parents=True, exist_ok=True)
    meshes = []
    for k, car in enumerate(("car_007_mesh.mat", "car_003_mesh.mat", "car_105_mesh.mat")):
        mesh = np.random.default_rng(k).integers(0, 256, (128, 128, 3, 24, 4), dtype=np.uint8)
        savemat(folder / car, {"im": mesh})
        meshes.append(mesh)
    return [meshes[1], meshes[0], meshes[2]]  # sorted by file name


def test_cars3d_reads_the_per_car_matlab_files(tmp_path: Path):
    meshes = write_cars(tmp_path / "cars3d")
    ds = TinyCars(tmp_path)
    factors = np.array([[0, 0, 0], [3, 23, 2], [1, 5, 1]])
    images = ds.images(factors)
    assert images.shape == (3, 3, 64, 64)
    for image, (elevation, azimuth, car) in zip(images, factors):
        expected = stored.resized(meshes[car][None, :, :, :, azimuth, elevation])[0]
        assert np.array_equal((image.permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    assert np.array_equal(ds.factors_of(ds.index(factors)), factors)
    assert torch.equal(TinyCars(tmp_path / "cars3d" / "car_003_mesh.mat").images(factors),
                       images)  # from the cache, found from the file itself


def test_broken_cars3d_files_are_refused_with_one_line(tmp_path: Path):
    folder = tmp_path / "cars3d"
    write_cars(folder)
    savemat(folder / "car_105_mesh.mat", {"image": np.zeros(3)})
    with pytest.raises(UsageError, match="car_105_mesh.mat: has no variable 'im'"):
        TinyCars(tmp_path)
    savemat(folder / "car_105_mesh.mat", {"im": np.zeros((64, 64, 3, 24, 4), np.uint8)})
    with pytest.raises(UsageError, match=r"'im' must be uint8 \[128, 128, 3, 24, 4\]"):
        TinyCars(tmp_path)
    (folder / "car_105_mesh.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(UsageError, match="car_105_mesh.mat: not a readable MATLAB file"):
        TinyCars(tmp_path)
    (folder / "car_105_mesh.mat").unlink()
    with pytest.raises(UsageError, match="expected 3 car_\\*_mesh.mat files, found 2"):
        TinyCars(tmp_path)


def test_list_and_show_give_each_dataset_its_factors(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in ("shapes3d", "mpi3d_toy", "mpi3d_realistic", "mpi3d_real", "smallnorb",
                 "cars3d"):
        assert f"  {name} " in listed
    assert ("factors: floor_hue 10, wall_hue 10, object_hue 10, scale 8, shape 4 "
            "(categorical), orientation 15") in listed
    assert main(["show", "smallnorb"]) == 0
    shown = capsys.readouterr().out
    assert "48,600" not in shown and "4,860 factor combinations, several images each" in shown
    assert "  azimuth       18 values  ordered" in shown
    assert "  category       5 values  categorical" in shown
    assert "file: 6 files (smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz, " in shown
    assert "get it with `disentangle data fetch smallnorb`" in shown
