"""Two processes under ``torchrun`` (Gloo, CPU): DDP training, checkpoint and resume (slow: run with -m slow)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from colja.train.data import load_training_data, write_jsonl
from tests.train.toy import rows

pytestmark = pytest.mark.slow


def torchrun(port: int, *args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "colja.cli", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_resume_equals_uninterrupted(tiny_backbone_path, tmp_path):
    from safetensors.torch import load_file

    data = write_jsonl(load_training_data(rows()), tmp_path / "toy.jsonl")
    common = ["--model", str(tiny_backbone_path), "--data", str(data), "--max-steps", "4", "--save-steps", "2",
              "--batch-size", "2", "--grad-accum", "2", "--dim", "16", "--doc-maxlen", "64", "--device", "cpu",
              "--no-progress"]
    torchrun(29611, *common, "--output", str(tmp_path / "full"))
    checkpoint = tmp_path / "full" / "checkpoints" / "step-00000002"
    torchrun(29612, *common, "--output", str(tmp_path / "resumed"), "--resume", str(checkpoint))
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
