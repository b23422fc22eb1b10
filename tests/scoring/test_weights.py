"""Weights: the manifest, sha256-verified loading, clear errors, and the ``weights``/``check`` commands."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scoring.cli import main as cli_main
from scoring.iqa import create_iqa_metric
from scoring.testweights import TEST_SEED, TEST_WEIGHTS_VERSION, make_test_weights
from scoring.weights import LOCAL_MANIFEST, MODEL_FILES, WeightsError, WeightStore, packaged_manifest, sha256_of
from tests.support.env import ROOT, shared_dir, subset_of_validation

FETCH = "python -m scoring weights fetch"
NIQE = "niqe_pris_params.npz"
MUSIQ = "musiq_koniq_ckpt-e95806b9.pth"
GENERATED = {name for model in ("niqe", "clipiqa", "musiq", "maniqa", "adaface", "fid") for name in MODEL_FILES[model]}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def real_niqe_params() -> Path:
    return shared_dir() / "ntire2025" / "weights" / NIQE


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def copy_weights(source: Path, target: Path, names: list[str]) -> Path:
    """A copy of a weights directory (its manifest and the named files; the big ones are not needed)."""
    target.mkdir(parents=True)
    shutil.copyfile(source / LOCAL_MANIFEST, target / LOCAL_MANIFEST)
    for name in names:
        shutil.copyfile(source / name, target / name)
    return target


# --- the loader -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RN50.pt", NIQE, "adaface_ir50_ms1mv2.ckpt"])
def test_missing_file_names_the_file_and_the_fetch_command(tmp_path, name):
    store = WeightStore(tmp_path)
    with pytest.raises(WeightsError) as caught:
        store.path(name)
    message = str(caught.value)
    assert name in message
    assert f"{FETCH} {tmp_path}" in message
    assert "make-test" in message  # the offline alternative is named too


def test_missing_file_fails_before_pyiqa_is_asked(tmp_path):
    # create_iqa_metric and verify must raise our error, not let pyiqa try a download.
    store = WeightStore(tmp_path)
    with pytest.raises(WeightsError, match="missing weight file RN50.pt"):
        create_iqa_metric("clipiqa", store, "cpu")
    with pytest.raises(WeightsError, match=FETCH):
        store.verify(["musiq"])


@pytest.mark.parametrize("name", [NIQE, MUSIQ])
def test_corrupted_test_weight_names_expected_and_actual_sha256(weights_dir, tmp_path, name):
    copy = copy_weights(weights_dir, tmp_path / "weights", [name])
    expected = json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"][name]
    assert sha256_of(copy / name) == expected
    flip_byte(copy / name, (copy / name).stat().st_size // 2)
    actual = hashlib.sha256((copy / name).read_bytes()).hexdigest()
    assert actual != expected

    store = WeightStore(copy)
    with pytest.raises(WeightsError) as caught:
        store.path(name)
    message = str(caught.value)
    assert str(copy / name) in message
    assert f"sha256 {actual}" in message
    assert f"expected {expected}" in message
    assert FETCH in message
    model = "niqe" if name == NIQE else "musiq"
    with pytest.raises(WeightsError, match=actual):
        create_iqa_metric(model, store, "cpu")


def test_no_checksum_known_is_an_error(tmp_path):
    # The FFHQ statistics have no published sha256: without a pinned one the file is refused.
    (tmp_path / "inception_FFHQ_512.pth").write_bytes(b"not checked")
    with pytest.raises(WeightsError, match=f"no checksum is known for inception_FFHQ_512.pth.*{FETCH}"):
        WeightStore(tmp_path).path("inception_FFHQ_512.pth")


def test_invalid_local_manifest_is_a_weights_error(tmp_path):
    (tmp_path / LOCAL_MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        WeightStore(tmp_path)


def test_real_niqe_parameters_are_official(tmp_path, weights_dir):
    shutil.copyfile(real_niqe_params(), tmp_path / NIQE)
    store = WeightStore(tmp_path)  # no local manifest: the packaged checksum decides
    assert store.kind == "unknown"
    assert packaged_manifest()[NIQE].sha256 == sha256_of(real_niqe_params())
    assert store.path(NIQE) == tmp_path / NIQE
    assert store.is_official(NIQE)
    assert store.verify(["niqe"]) == {NIQE: packaged_manifest()[NIQE].sha256}

    # The test weights carry the same real NIQE file (official) but random networks (not).
    test_store = WeightStore(weights_dir)
    assert test_store.is_official(NIQE)
    assert not any(test_store.is_official(name) for name in GENERATED - {NIQE})


def test_packaged_manifest_covers_every_model_file():
    manifest = packaged_manifest()
    for files in MODEL_FILES.values():
        for name in files:
            assert name in manifest
            entry = manifest[name]
            assert entry.url.startswith(("https://", "hf://"))
            if entry.sha256 is not None:
                assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
            if entry.sha256 and entry.sha256_prefix:
                assert entry.sha256.startswith(entry.sha256_prefix)


# --- test weights ---------------------------------------------------------------------------------


def test_session_test_weights_are_marked_test(weights_dir):
    manifest = json.loads((weights_dir / LOCAL_MANIFEST).read_text())
    assert manifest["kind"] == "test"
    assert manifest["seed"] == TEST_SEED and manifest["version"] == TEST_WEIGHTS_VERSION
    assert set(manifest["files"]) == GENERATED
    assert WeightStore(weights_dir).kind == "test"


def test_make_test_weights_is_deterministic_and_marked_test(weights_dir, tmp_path):
    # The cheap models only; the slow test below runs the full command.
    files = make_test_weights(tmp_path, niqe_params=real_niqe_params(), models=("niqe", "musiq"))
    manifest = json.loads((tmp_path / LOCAL_MANIFEST).read_text())
    assert manifest["kind"] == "test"
    session = json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"]
    assert files == {NIQE: session[NIQE], MUSIQ: session[MUSIQ]}  # same seed, same bytes
    store = WeightStore(tmp_path)
    assert store.kind == "test"
    assert store.verify(["niqe", "musiq"]) == files
    assert not store.is_official(MUSIQ)


def test_test_weights_never_use_the_official_checksum(weights_dir, tmp_path):
    # A test directory pins its own checksums: a random MUSIQ must load although the
    # published checksum of that name is another one, and must not count as official.
    store = WeightStore(copy_weights(weights_dir, tmp_path / "w", [MUSIQ]))
    assert store.expected_sha256(MUSIQ) != packaged_manifest()[MUSIQ].sha256
    assert store.path(MUSIQ).is_file()
    assert not store.is_official(MUSIQ)


@pytest.mark.slow
def test_make_test_cli_writes_every_file_like_the_session_weights(weights_dir, tmp_path):
    # About 30 s: it builds every network (MANIQA's ViT-B/8 is 540 MB).
    done = run_cli("weights", "make-test", str(tmp_path), "--niqe-params", str(real_niqe_params()))
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(GENERATED)} test weight file(s)" in done.stdout
    manifest = json.loads((tmp_path / LOCAL_MANIFEST).read_text())
    assert manifest["kind"] == "test"
    assert manifest["files"] == json.loads((weights_dir / LOCAL_MANIFEST).read_text())["files"]


# --- weights verify -------------------------------------------------------------------------------


def test_weights_verify_cli_on_the_test_weights(weights_dir):
    done = run_cli("weights", "verify", str(weights_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = {line.split()[1]: line.split() for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert set(lines) == set(packaged_manifest())
    for name in GENERATED:
        assert lines[name][0] == "ok", lines[name]
    assert lines[NIQE][-1] == "official"  # the real parameters, copied
    assert "official" not in lines[MUSIQ]
    # Files the test weights do not include are reported missing, which is not an error.
    assert lines["one-align"][0] == "missing"
    assert lines["detection_Resnet50_Final.pth"][0] == "missing"


def test_weights_verify_cli_reports_a_corrupted_file(weights_dir, tmp_path):
    copy = copy_weights(weights_dir, tmp_path / "weights", [NIQE])
    flip_byte(copy / NIQE, 100)
    done = run_cli("weights", "verify", str(copy))
    assert done.returncode == 1
    bad = [line for line in done.stdout.splitlines() if line.startswith("bad")]
    assert len(bad) == 1 and NIQE in bad[0]
    assert "expected" in done.stdout and FETCH in done.stdout
    assert "Traceback" not in done.stderr


# --- check ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_inputs(tmp_path_factory) -> Path:
    inputs, _landmarks = subset_of_validation(tmp_path_factory.mktemp("check"), per_dataset=1)
    return inputs


def assert_error_shape(payload: dict) -> None:
    assert payload["ok"] is False
    assert payload["errors"], payload
    for error in payload["errors"]:
        assert {"code", "path", "message"} <= set(error)
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["path"], str)
        assert isinstance(error["message"], str) and error["message"]


def test_check_cli_accepts_a_valid_archive(check_inputs, tmp_path):
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for png in sorted(check_inputs.rglob("*.png")):
            zf.write(png, png.relative_to(check_inputs).as_posix())
    done = run_cli("check", "--inputs", str(check_inputs), str(archive), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert payload["ok"] is True and payload["errors"] == []
    # Without --json: a human sentence, same exit code.
    done = run_cli("check", "--inputs", str(check_inputs), str(archive))
    assert done.returncode == 0 and "Submission OK" in done.stdout


GARBAGE = {
    "random_bytes.zip": bytes(range(256)) * 64,
    "empty.zip": b"",
    "truncated.zip": b"PK\x03\x04" + b"\x00" * 40,
    "text.tar": b"this is not an archive at all\n" * 10,
    "fake_header.zip": b"PK\x05\x06" + b"\xff" * 18,
}


def test_check_cli_rejects_garbage_without_a_traceback(check_inputs, tmp_path):
    # One real process, for the exit code and stderr; the other cases run in-process below.
    source = tmp_path / "random_bytes.zip"
    source.write_bytes(GARBAGE["random_bytes.zip"])
    done = run_cli("check", "--inputs", str(check_inputs), str(source), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert_error_shape(json.loads(done.stdout))


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_check_command_on_garbage_in_process(check_inputs, tmp_path, capsys, name):
    source = tmp_path / name
    source.write_bytes(GARBAGE[name])
    assert cli_main(["check", "--inputs", str(check_inputs), str(source), "--json"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert_error_shape(json.loads(out))
    # Without --json: a human summary, same exit code, still no traceback.
    assert cli_main(["check", "--inputs", str(check_inputs), str(source)]) == 1
    out, err = capsys.readouterr()
    assert "Submission rejected" in out and "Traceback" not in out + err


def test_check_command_on_missing_paths(check_inputs, tmp_path, capsys):
    for inputs, source in [(check_inputs, tmp_path / "absent.zip"), (tmp_path / "no-inputs", tmp_path)]:
        assert cli_main(["check", "--inputs", str(inputs), str(source), "--json"]) == 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert_error_shape(json.loads(out))
