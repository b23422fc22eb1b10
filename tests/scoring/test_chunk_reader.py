"""The scorer's reader thread: the same batches in the same order, read one batch ahead, and a
file that cannot be read raises where its batch is asked for."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoring import scorer
from scoring.inputs import InputImage
from scoring.scorer import ChunkReader, read_chunk


def make_set(root: Path, count: int) -> tuple[list[InputImage], Path]:
    rng = np.random.default_rng(5)
    inputs, restored = root / "inputs", root / "restored"
    images = []
    for index in range(count):
        for folder in (inputs, restored):
            (folder / "CelebA").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "CelebA" / f"{index}.png")
        images.append(InputImage("CelebA", str(index), inputs / "CelebA" / f"{index}.png", 16, 16))
    return images, restored


def batches(images: list[InputImage], size: int) -> list[list[InputImage]]:
    return [images[start:start + size] for start in range(0, len(images), size)]


def read_all(chunks, restored: Path, prefetch: bool):
    with ChunkReader(chunks, restored, torch.device("cpu"), prefetch) as reader:
        return [reader.next() for _ in chunks]


def test_prefetched_batches_equal_the_plain_reads(tmp_path):
    images, restored = make_set(tmp_path, 5)
    chunks = batches(images, 2)
    expected = [read_chunk(chunk, restored, torch.device("cpu")) for chunk in chunks]
    for prefetch in (True, False):
        got = read_all(chunks, restored, prefetch)
        assert len(got) == 3
        for (lq, rest, batch), (lq0, rest0, batch0) in zip(got, expected, strict=True):
            assert all(np.array_equal(a, b) for a, b in zip(lq + rest, lq0 + rest0, strict=True))
            assert torch.equal(batch, batch0)
    assert got[0][2].shape == (2, 3, 16, 16) and got[-1][2].shape == (1, 3, 16, 16)


def test_the_next_batch_is_read_in_a_thread_while_the_caller_holds_this_one(tmp_path, monkeypatch):
    images, restored = make_set(tmp_path, 3)
    calls: list[tuple[str, str]] = []
    original = scorer.read_chunk

    def recording(chunk, *args):
        calls.append((chunk[0].stem, threading.current_thread().name))
        return original(chunk, *args)

    monkeypatch.setattr(scorer, "read_chunk", recording)
    with ChunkReader(batches(images, 1), restored, torch.device("cpu")) as reader:
        reader.next()
        # Batch 1 was asked for as soon as batch 0 was handed out; wait for that thread to start it.
        for _ in range(200):
            if len(calls) == 2:
                break
            threading.Event().wait(0.01)
        assert [stem for stem, _ in calls] == ["0", "1"]
        assert all(name.startswith("prefetch") for _, name in calls)
        reader.next()
        reader.next()
    assert [stem for stem, _ in calls] == ["0", "1", "2"]


def test_an_unreadable_restoration_raises_at_its_own_batch(tmp_path):
    images, restored = make_set(tmp_path, 3)
    (restored / "CelebA" / "2.png").write_bytes(b"not a png")
    with ChunkReader(batches(images, 1), restored, torch.device("cpu")) as reader:
        reader.next()
        reader.next()  # batch 2 is being read (and fails) in the thread; batch 1 is unaffected
        with pytest.raises(OSError):
            reader.next()
