"""modelport's local trainer: LoRA fine-tuning of an open chat model on this machine.

The ``local`` backend serves the training capability. Each job is a detached background
process (``python -m modelport_local.worker JOBDIR``) that outlives the command that started
it, working in a job directory of its own under ``jobs_dir``::

    <jobs_dir>/files/<file id>.jsonl   uploaded datasets (the chat JSONL format)
    <jobs_dir>/<job id>/spec.json      what the job trains: base model, data, hyperparameters
                        status.json    status, step, total steps, loss, seconds left, error
                        events.jsonl   one event per line (started, each step, finished...)
                        log.txt        the worker's output (tracebacks land here)
                        adapter/       the LoRA adapter (PEFT), when the job succeeded
                        merged/        the base model with the adapter merged in (merge = true)
                        serve.md       how to serve the result with vLLM, Ollama, llama.cpp
                        Modelfile      for ``ollama create``

Training uses Hugging Face TRL's ``SFTTrainer`` with a PEFT ``LoraConfig``, on CUDA when it is
there and on the CPU otherwise. The training stack (torch, transformers, trl, peft,
accelerate, datasets) is the optional extra ``local`` (``pip install 'modelport[local]'``):
importing this package, registering the backend, uploading data and following jobs never
import it; only the worker does. Nothing is downloaded: the base model is a local directory
or a Hugging Face hub id already in the local cache, and the worker runs with
``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from modelport import BackendContext, BackendRegistry, EffectiveSetting, hookimpl

if TYPE_CHECKING:
    from ._backend import LocalTrainer

__all__ = ["LocalSettings", "LocalTrainer", "modelport_register_backends"]


def _positive(_: Any, attribute: Any, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0, not {value!r}")


@attrs.frozen(kw_only=True)
class LocalSettings:
    """The keys of ``[backends.local]``.

    :ivar jobs_dir: where jobs and uploaded data live (``~`` is expanded). Default:
        ``local-jobs`` in the user data directory (``~/.local/share/modelport/local-jobs``).
    :ivar base_model: the trainer's default base model: what the hub trains when neither the
        call (``--model``) nor ``[training] base_model`` names one, and what a job trains
        when its own base model is not a local model: a directory holding a Hugging Face
        model, or a hub id already in the local cache.
    :ivar lora_r: the LoRA rank.
    :ivar lora_alpha: the LoRA scaling numerator (the scale is ``lora_alpha / lora_r``).
    :ivar lora_dropout: dropout on the LoRA layers.
    :ivar target_modules: the module names to adapt (``["q_proj", "v_proj"]``, say); empty:
        every linear layer (PEFT's ``"all-linear"``).
    :ivar epochs: passes over the data (a job's ``n_epochs`` hyperparameter overrides it).
    :ivar max_steps: stop after this many optimiser steps, whatever ``epochs`` says.
    :ivar learning_rate: the peak learning rate.
    :ivar batch_size: examples per optimiser step.
    :ivar max_seq_length: tokens per example; longer examples are cut.
    :ivar merge: also save the base model with the adapter merged in (``merged/``).
    :ivar llama_cpp_dir: a llama.cpp checkout; when set, the adapter (and the merged model)
        are converted to GGUF with its ``convert_lora_to_gguf.py`` (``convert_hf_to_gguf.py``).
    :ivar device: ``auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda`` (pick the
        GPU with ``CUDA_VISIBLE_DEVICES``).
    :ivar threads: CPU threads torch may use (default: torch's choice, every core).
    :ivar seed: the random seed, for repeatable runs.
    :ivar cancel_timeout_s: how long ``cancel`` waits for the worker to stop before killing it.
    """

    jobs_dir: str | None = None
    base_model: str | None = None
    lora_r: int = attrs.field(default=16, validator=_positive)
    lora_alpha: int = attrs.field(default=32, validator=_positive)
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ()
    epochs: int = attrs.field(default=3, validator=_positive)
    max_steps: int | None = attrs.field(default=None, validator=_positive)
    learning_rate: float = attrs.field(default=2e-4, validator=_positive)
    batch_size: int = attrs.field(default=4, validator=_positive)
    max_seq_length: int = attrs.field(default=1024, validator=_positive)
    merge: bool = False
    llama_cpp_dir: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = attrs.field(default=None, validator=_positive)
    seed: int = 42
    cancel_timeout_s: float = attrs.field(default=10.0, validator=_positive)

    def jobs_path(self) -> Path:
        """The jobs directory, absolute."""
        if self.jobs_dir:
            return Path(self.jobs_dir).expanduser().absolute()
        import platformdirs

        return platformdirs.user_data_path("modelport") / "local-jobs"

    def effective(self, backend: str, env: Mapping[str, str]) -> dict[str, EffectiveSetting]:
        """The settings in effect (``modelport config show``): the real jobs directory."""
        values = attrs.asdict(self)
        shown = {key: EffectiveSetting(value) for key, value in values.items()}
        shown["jobs_dir"] = EffectiveSetting(
            str(self.jobs_path()), None if self.jobs_dir else "default"
        )
        return shown


def _build(context: BackendContext[LocalSettings]) -> LocalTrainer:
    from ._backend import LocalTrainer

    return LocalTrainer(context.settings, name=context.name)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer ``local``, LoRA training on this machine."""
    registry.add(
        "local",
        _build,
        capabilities=["training"],
        settings=LocalSettings,
        description="LoRA fine-tuning of an open model on this machine (TRL + PEFT)",
    )


def __getattr__(name: str) -> object:
    if name == "LocalTrainer":
        from ._backend import LocalTrainer

        return LocalTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
