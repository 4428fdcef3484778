"""The local trainer passes the training conformance suite plugin authors use.

Every job the suite starts is a real worker on the tiny model, cancelled when the test ends
(so the suite costs process starts, not training). The suite's ``base_model`` is no model on
this machine: ``[backends.local] base_model`` names the tiny one, as a user's config would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .conftest import need_stack

need_stack()

import modelport_local  # noqa: E402
from modelport import Hub  # noqa: E402
from modelport.errors import InvalidRequestError  # noqa: E402
from modelport.testing import FakeBackends  # noqa: E402
from modelport.testing.conformance import TrainingConformance  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*checkpointing.*:FutureWarning")


class TestLocalTrainer(TrainingConformance):
    backend = "local"
    plugins = (("local", modelport_local),)
    model: Path

    @pytest.fixture
    def hub(self, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Hub]:
        """The suite's hub, on the tiny model; no worker outlives the test."""
        self.model = tiny_model_dir
        self.fakes = FakeBackends()
        hub = self.make_hub(tmp_path)
        yield hub
        hub.close()
        trainer = modelport_local.LocalTrainer(
            modelport_local.LocalSettings(jobs_dir=str(tmp_path / "jobs"), cancel_timeout_s=5)
        )
        for job in trainer.list_jobs(limit=1000):
            with contextlib.suppress(InvalidRequestError):  # already over
                trainer.cancel_job(job.id)

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {
            "jobs_dir": str(tmp_path / "jobs"),
            "base_model": str(self.model),
            "max_steps": 2,
            "threads": 1,
        }

    def arrange_service(self) -> None:
        """Nothing to arrange: the service is this machine."""

    def test_vendor_failures_map_into_the_core_tree(self) -> None:
        pytest.skip("the local trainer calls no vendor")
