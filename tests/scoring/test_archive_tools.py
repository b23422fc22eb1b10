"""The zips that participants' real tools write, each accepted, or rejected with how to make one that works.

Debian's ``zip``, ``p7zip-full`` (7z) and ``libarchive-tools`` (bsdtar, what Windows' ``tar -a`` and
macOS write) are installed by ``./dev test``'s setup; in CI a missing tool fails, it never skips.
Images are 256x256 noise, so every member spans several 64 KiB read chunks.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from scoring.archive import check_and_extract
from tests.scoring.test_archive import expected_for, relpaths
from tests.support.env import in_ci

SIZE = (256, 256)
DATASETS = {"CelebA": ["Aaron_Peirsol", "b"], "LFW-Test": ["c"], "WebPhoto-Test": ["d", "e"]}
EXPECTED = expected_for(DATASETS, SIZE)


def compressible_png(seed: int) -> bytes:
    """A gradient saved without PNG compression (~196 KB): every zip method really compresses it
    (7-Zip stores a member that does not shrink, whatever -mm says)."""
    image = Image.linear_gradient("L").resize(SIZE).rotate(seed * 40).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


IMAGES = {path: compressible_png(i) for i, path in enumerate(relpaths(DATASETS))}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./dev test installs zip, p7zip-full and libarchive-tools)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def results_folder(root: Path) -> Path:
    folder = root / "results"
    for relpath, data in IMAGES.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(data)
    return folder


def run(args: list[str], cwd: Path, stdin: bytes | None = None) -> None:
    subprocess.run(args, cwd=cwd, input=stdin, check=True, capture_output=True)


def info_zip(*options: str) -> Callable[[Path, Path], None]:
    return lambda folder, out: run([tool("zip"), "-q", "-r", *options, str(out), "."], folder)


def info_zip_stdin(folder: Path, out: Path) -> None:
    names = "\n".join(sorted(IMAGES)).encode()
    run([tool("zip"), "-q", "-@", str(out)], folder, stdin=names)


def seven_zip(method: str) -> Callable[[Path, Path], None]:
    return lambda folder, out: run([tool("7z"), "a", "-bd", "-tzip", f"-mm={method}", str(out), "."], folder)


def bsdtar(*options: str) -> Callable[[Path, Path], None]:
    # `tar -a -c -f results.zip .` on Windows 10/11 and macOS: every name starts with "./".
    return lambda folder, out: run([tool("bsdtar"), "--format", "zip", *options, "-cf", str(out), "."], folder)


def python_zipfile(method: int) -> Callable[[Path, Path], None]:
    def write(folder: Path, out: Path) -> None:
        with zipfile.ZipFile(out, "w", compression=method) as archive:
            for relpath in sorted(IMAGES):
                archive.write(folder / relpath, relpath)
    return write


def make_archive(folder: Path, out: Path) -> None:
    shutil.make_archive(str(out.with_suffix("")), "zip", root_dir=folder)


def finder_style(folder: Path, out: Path) -> None:
    """What macOS's Compress does: the folder itself, __MACOSX/ with ._ resource forks, .DS_Store."""
    parent = folder.parent
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    for relpath in IMAGES:
        fork = parent / "__MACOSX" / "results" / Path(relpath).parent / f"._{Path(relpath).name}"
        fork.parent.mkdir(parents=True, exist_ok=True)
        fork.write_bytes(b"\0\5\26\7" + bytes(60))
    run([tool("zip"), "-q", "-r", str(out), "results", "__MACOSX"], parent)


STORE, DEFLATE, BZIP2, LZMA = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA
# tool -> (how it writes results.zip, the compression method its image members must have)
ACCEPTED: dict[str, tuple[Callable[[Path, Path], None], int]] = {
    "zip -r (deflate)": (info_zip(), DEFLATE),
    "zip -r -0 (store)": (info_zip("-0"), STORE),
    "zip -r -fz (zip64)": (info_zip("-fz"), DEFLATE),
    "zip -@ (names from stdin)": (info_zip_stdin, DEFLATE),
    "7z -mm=Deflate": (seven_zip("Deflate"), DEFLATE),
    "7z -mm=Copy": (seven_zip("Copy"), STORE),
    "7z -mm=BZip2": (seven_zip("BZip2"), BZIP2),
    "7z -mm=LZMA": (seven_zip("LZMA"), LZMA),
    "bsdtar --format zip (Windows tar -a, macOS)": (bsdtar(), DEFLATE),
    "bsdtar --format zip, stored": (bsdtar("--options", "zip:compression=store"), STORE),
    "python zipfile ZIP_STORED": (python_zipfile(STORE), STORE),
    "python zipfile ZIP_DEFLATED": (python_zipfile(DEFLATE), DEFLATE),
    "python zipfile ZIP_BZIP2": (python_zipfile(BZIP2), BZIP2),
    "python zipfile ZIP_LZMA": (python_zipfile(LZMA), LZMA),
    "shutil.make_archive": (make_archive, DEFLATE),
    "Finder-style (folder, __MACOSX/, ._*, .DS_Store)": (finder_style, DEFLATE),
}


def image_methods(out: Path) -> set[int]:
    return {info.compress_type for info in zipfile.ZipFile(out).infolist() if info.filename.endswith(".png")
            and "__MACOSX" not in info.filename}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_real_tool_archive_is_accepted(tmp_path: Path, name: str) -> None:
    out = tmp_path / "results.zip"
    write, method = ACCEPTED[name]
    write(results_folder(tmp_path), out)
    assert image_methods(out) == {method}
    report = check_and_extract(out, EXPECTED, tmp_path / "extracted")
    assert report.ok, report.summary()
    for relpath, data in IMAGES.items():
        assert (tmp_path / "extracted" / relpath).read_bytes() == data


def test_bsdtar_names_start_with_dot_slash(tmp_path: Path) -> None:
    """The reason bsdtar's zips were refused: a "./" entry and "./"-prefixed names."""
    out = tmp_path / "results.zip"
    bsdtar()(results_folder(tmp_path), out)
    names = zipfile.ZipFile(out).namelist()
    assert "./" in names and all(name.startswith("./") for name in names)


def test_7z_deflate64_is_refused_with_rezip_commands(tmp_path: Path) -> None:
    out = tmp_path / "results.zip"
    seven_zip("Deflate64")(results_folder(tmp_path), out)
    assert image_methods(out) == {9}
    report = check_and_extract(out, EXPECTED, tmp_path / "extracted")
    assert not report.ok
    assert {p.code for p in report.problems} == {"unsupported_compression"}
    assert len(report.problems) == len(IMAGES)
    message = report.problems[0].message
    assert "Deflate64" in message
    for command in ("Compress-Archive -Path * -DestinationPath", "tar -a -c -f", "zip -r ../results.zip ."):
        assert command in message
    assert not (tmp_path / "extracted").exists() or not any((tmp_path / "extracted").iterdir())


def test_dot_slash_does_not_hide_a_duplicate(tmp_path: Path) -> None:
    """"./CelebA/b.png" and "CelebA/b.png" are the same file: one of them is a duplicate."""
    out = tmp_path / "results.zip"
    with zipfile.ZipFile(out, "w") as archive:
        for relpath, data in IMAGES.items():
            archive.writestr(f"./{relpath}", data)
        archive.writestr("CelebA/b.png", IMAGES["CelebA/b.png"])
    report = check_and_extract(out, EXPECTED)
    assert [(p.code, p.path) for p in report.problems] == [("duplicate", "CelebA/b.png")]


def test_dot_slash_cannot_escape(tmp_path: Path) -> None:
    out = tmp_path / "results.zip"
    with zipfile.ZipFile(out, "w") as archive:
        for relpath, data in IMAGES.items():
            archive.writestr(relpath, data)
        archive.writestr("./../evil.png", b"x")
    report = check_and_extract(out, EXPECTED)
    assert [(p.code, p.path) for p in report.problems] == [("path_escape", "./../evil.png")]


@pytest.mark.parametrize("method", [BZIP2, LZMA])
def test_bzip2_and_lzma_output_is_bounded_by_the_declared_size(tmp_path: Path, method: int) -> None:
    """20 MB of zeros declared as 100 KB (under the ratio check's floor): decoding stops at 100 KB."""
    from tests.scoring.test_archive import patch_zip

    members = dict(IMAGES)
    members["CelebA/b.png"] = bytes(20 * 1024 * 1024)
    out = tmp_path / "results.zip"
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for relpath, data in members.items():
            archive.writestr(relpath, data)
    index = sorted(members).index("CelebA/b.png")
    out.write_bytes(patch_zip(out.read_bytes(), index, size=100 * 1024))
    report = check_and_extract(out, EXPECTED)
    assert [(p.code, p.path) for p in report.problems] == [("corrupt_zip", "CelebA/b.png")]
    assert "unpacks to more than its declared" in report.problems[0].message


@pytest.mark.parametrize("method", [BZIP2, LZMA])
def test_damaged_bzip2_and_lzma_data_is_corrupt_zip(tmp_path: Path, method: int) -> None:
    out = tmp_path / "results.zip"
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for relpath, data in IMAGES.items():
            archive.writestr(relpath, data)
    info = zipfile.ZipFile(out).getinfo("CelebA/b.png")
    data = bytearray(out.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 12, start + 40):  # past LZMA's properties, into the stream
        data[i] ^= 0x55
    out.write_bytes(bytes(data))
    report = check_and_extract(out, EXPECTED)
    assert [(p.code, p.path) for p in report.problems] == [("corrupt_zip", "CelebA/b.png")]
