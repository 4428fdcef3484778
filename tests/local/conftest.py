"""Shared by the local trainer's tests: a tiny model built here, and no worker left behind."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport_local._jobs import alive

STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
#: How long a tiny job may take, start to finish (importing torch is most of it).
JOB_TIMEOUT_S = 180.0


def need_stack() -> None:
    """Skip, saying why, when the ``local`` extra is not installed."""
    for name in STACK:
        pytest.importorskip(
            name,
            reason=f"the local trainer's tests need {name}: "
            "pip install torch==2.13.0 -e '.[local]'",
        )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model with a ChatML template (built once per session)."""
    need_stack()
    from modelport_local.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same without a chat template: the trainer falls back to its own."""
    need_stack()
    from modelport_local.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny") / "plain", chat_template=False)


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Iterator[Path]:
    """A jobs directory; any worker still running under it afterwards is killed."""
    root = tmp_path / "jobs"
    yield root
    for pid_file in root.glob("*/pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            if alive(pid, pid_file.parent):
                os.killpg(pid, signal.SIGKILL)
