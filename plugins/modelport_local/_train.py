"""The training itself, run only in the worker process: TRL's ``SFTTrainer`` with a PEFT LoRA.

The training stack is loaded with :func:`importlib.import_module`, so its modules are plain
``Any`` to the type checker (which never reads torch's sources) and importing this module
costs nothing until :func:`train` runs.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._jobs import append_event, update_status
from ._serve import write_artifacts

__all__ = ["FALLBACK_CHAT_TEMPLATE", "STACK", "MissingStackError", "examples", "train"]

#: What the ``local`` extra installs, by import name.
STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
INSTALL_HINT = "pip install 'modelport[local]'"

#: ChatML, for a base model whose tokenizer has no chat template.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class MissingStackError(RuntimeError):
    """The training stack (the ``local`` extra) is not installed."""


class BaseModelError(RuntimeError):
    """The base model could not be loaded."""


def load_stack() -> dict[str, Any]:
    """Import the training stack; a missing module is a :class:`MissingStackError`."""
    modules: dict[str, Any] = {}
    for name in STACK:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError as exc:
            raise MissingStackError(
                f"the local trainer needs {', '.join(STACK)}; {name} cannot be imported "
                f"({exc}): {INSTALL_HINT}"
            ) from exc
    return modules


def examples(path: Path) -> list[dict[str, Any]]:
    """Prompt/completion rows from a chat JSONL file: one row per assistant message that is
    learnt (not ``"weight": 0``), its prompt being every message before it. So the loss
    covers exactly the learnt replies, and a context-only reply is context."""
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        messages = json.loads(line)["messages"]
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        for index, message in enumerate(messages):
            if message["role"] == "assistant" and message.get("weight", 1) != 0 and index:
                rows.append({"prompt": clean[:index], "completion": [clean[index]]})
    return rows


def _device(stack: Mapping[str, Any], wanted: str) -> str:
    torch = stack["torch"]
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {wanted!r} was asked for, but torch sees no CUDA device")
    return wanted


def _load_base(stack: Mapping[str, Any], path: str, device: str) -> tuple[Any, Any]:
    torch = stack["torch"]
    transformers = stack["transformers"]
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        dtype = torch.float32
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError) as exc:
        raise BaseModelError(
            f"cannot load the base model from {path}: {exc}. Give a directory holding a "
            "Hugging Face model, or a hub id already downloaded (`hf download <id>`)"
        ) from exc
    if tokenizer.chat_template is None:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer, model


def _progress_callback(
    stack: Mapping[str, Any],
    jobdir: Path,
    report: Callable[[str], None],
    cancelled: Callable[[], bool],
    started: Callable[[], None],
) -> Any:
    """A ``TrainerCallback`` writing each step into ``status.json`` and ``events.jsonl``, and
    stopping the training at the end of the step a cancel arrived in."""
    base = stack["transformers"].TrainerCallback
    clock: dict[str, float] = {}

    def on_step_end(self: Any, args: Any, state: Any, control: Any, **_: Any) -> Any:
        if cancelled():
            control.should_training_stop = True
        return control

    def on_train_begin(self: Any, args: Any, state: Any, control: Any, **_: Any) -> None:
        started()
        clock["start"] = time.monotonic()
        update_status(jobdir, step=0, total_steps=int(state.max_steps))
        report(f"training: {state.max_steps} steps")

    def on_log(self: Any, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        if not logs or "loss" not in logs:
            return
        step, total = int(state.global_step), int(state.max_steps)
        elapsed = time.monotonic() - clock.get("start", time.monotonic())
        left = elapsed / step * (total - step) if step else None
        loss = float(logs["loss"])
        update_status(
            jobdir, step=step, total_steps=total, loss=loss, seconds_left=left, elapsed_s=elapsed
        )
        when = ""
        if left is not None:
            when = f", about {left:.1f} s left" if left < 10 else f", about {left:.0f} s left"
        append_event(
            jobdir,
            f"step {step}/{total}: loss {loss:.4f}{when}",
            step=step,
            total_steps=total,
            loss=loss,
            seconds_left=left,
        )

    methods = {"on_train_begin": on_train_begin, "on_log": on_log, "on_step_end": on_step_end}
    cls = type("ModelportProgress", (base,), methods)
    return cls()


def train(
    jobdir: Path,
    spec: Mapping[str, Any],
    report: Callable[[str], None],
    *,
    cancelled: Callable[[], bool] = lambda: False,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Train the job in ``jobdir`` as ``spec`` says; return the artifacts (paths by name), or
    nothing when ``cancelled()`` said so during the training (which then stops at the end of
    its step; ``started()`` is called when the steps begin)."""
    config: Mapping[str, Any] = spec["config"]
    stack = load_stack()
    torch = stack["torch"]
    transformers = stack["transformers"]
    trl = stack["trl"]
    peft = stack["peft"]
    datasets = stack["datasets"]
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))

    device = _device(stack, str(config.get("device", "auto")))
    base_path = str(spec["base_path"])
    report(f"loading {spec['base_model']} on {device}")
    tokenizer, model = _load_base(stack, base_path, device)
    update_status(jobdir, device=device)

    rows = examples(jobdir / "train.jsonl")
    if not rows:
        raise ValueError("the training data has no assistant reply to learn")
    train_data = datasets.Dataset.from_list(rows)
    eval_data = None
    if (jobdir / "validation.jsonl").is_file():
        eval_data = datasets.Dataset.from_list(examples(jobdir / "validation.jsonl"))

    use_cuda = device.startswith("cuda")
    bf16 = bool(use_cuda and torch.cuda.is_bf16_supported())
    args = trl.SFTConfig(
        output_dir=str(jobdir / "checkpoints"),
        num_train_epochs=float(config["epochs"]),
        max_steps=int(config.get("max_steps") or -1),
        per_device_train_batch_size=int(config["batch_size"]),
        per_device_eval_batch_size=int(config["batch_size"]),
        learning_rate=float(config["learning_rate"]),
        max_length=int(config["max_seq_length"]),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not use_cuda,
        bf16=bf16,
        fp16=use_cuda and not bf16,
        disable_tqdm=True,
        seed=int(config["seed"]),
        dataloader_num_workers=0,
    )
    target = list(config.get("target_modules") or []) or "all-linear"
    lora = peft.LoraConfig(
        r=int(config["lora_r"]),
        lora_alpha=int(config["lora_alpha"]),
        lora_dropout=float(config["lora_dropout"]),
        target_modules=target,
        task_type="CAUSAL_LM",
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[_progress_callback(stack, jobdir, report, cancelled, started)],
    )
    trainer.train()
    if cancelled():
        return {}
    if eval_data is not None:
        metrics = trainer.evaluate()
        if "eval_loss" in metrics:
            report(f"validation loss {float(metrics['eval_loss']):.4f}")
            update_status(jobdir, validation_loss=float(metrics["eval_loss"]))

    adapter = jobdir / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    report(f"adapter saved to {adapter}")
    merged: Path | None = None
    if config.get("merge"):
        merged = jobdir / "merged"
        trainer.model.merge_and_unload().save_pretrained(str(merged))
        tokenizer.save_pretrained(str(merged))
        report(f"merged model saved to {merged}")

    artifacts = write_artifacts(
        jobdir,
        name=str(spec["adapter_name"]),
        base_model=str(spec["base_model"]),
        base_path=Path(base_path),
        adapter=adapter,
        merged=merged,
        lora_r=int(config["lora_r"]),
        llama_cpp_dir=config.get("llama_cpp_dir"),
        log=jobdir / "log.txt",
    )
    for note in artifacts.notes:
        append_event(jobdir, note, level="warning")
    return artifacts.files


def offline_environment() -> dict[str, str]:
    """The variables the worker runs with: nothing is downloaded."""
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def apply_environment() -> None:
    os.environ.update(offline_environment())
