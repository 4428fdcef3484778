"""What it takes to serve a trained adapter: ``serve.md``, an Ollama ``Modelfile``, and GGUF
files when a llama.cpp checkout is configured. No training stack needed (the worker calls it
after training; tests call it on their own)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import attrs

from ._jobs import write_text_atomic

__all__ = [
    "LORA_SCRIPT",
    "MERGED_SCRIPT",
    "Artifacts",
    "chat_notes",
    "convert_gguf",
    "vllm_command",
    "write_artifacts",
]

LORA_SCRIPT = "convert_lora_to_gguf.py"
MERGED_SCRIPT = "convert_hf_to_gguf.py"
_CONVERT_TIMEOUT_S = 3600.0


@attrs.frozen
class Artifacts:
    """The serving files written, and what could not be made (one line each)."""

    files: dict[str, str]
    notes: tuple[str, ...] = ()


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _gguf_unavailable(llama_cpp_dir: str | None) -> str | None:
    """Why GGUF conversion cannot run, or ``None`` when it can."""
    if not llama_cpp_dir:
        return (
            "GGUF conversion is not available: [backends.local] llama_cpp_dir is not set. "
            "To enable it, clone https://github.com/ggml-org/llama.cpp, install its "
            "requirements.txt, and set llama_cpp_dir to the checkout"
        )
    script = Path(llama_cpp_dir).expanduser() / LORA_SCRIPT
    if not script.is_file():
        return (
            f"GGUF conversion is not available: {script} does not exist "
            "(llama_cpp_dir must be a llama.cpp checkout)"
        )
    return None


def convert_gguf(
    llama_cpp_dir: str, script: str, args: list[str], log: Path
) -> tuple[bool, str | None]:
    """Run a llama.cpp conversion script; its output goes to ``log``. ``(ok, why not)``."""
    command = [sys.executable, str(Path(llama_cpp_dir).expanduser() / script), *args]
    with open(log, "ab") as out:
        out.write(f"+ {shlex.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=_CONVERT_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{script} could not run: {exc}"
    if done.returncode != 0:
        return False, f"{script} failed (exit status {done.returncode}); see log.txt"
    return True, None


def vllm_command(base_model: str, name: str, adapter: Path | str, lora_r: int) -> str:
    """The vLLM command serving the adapter ``adapter`` as the model ``name``."""
    rank = f" --max-lora-rank {lora_r}" if lora_r > 16 else ""
    return f"vllm serve {_q(base_model)} --enable-lora --lora-modules {name}={_q(adapter)}{rank}"


def chat_notes(
    jobdir: Path, *, name: str, base_model: str, adapter: Path | str, lora_r: int
) -> list[str]:
    """How to chat with a succeeded job's adapter through modelport's ``vllm``, ``ollama``
    or ``llamacpp`` presets: short lines for ``modelport jobs show`` (``serve.md`` has it
    all). Reads only what the job directory holds."""
    lines = [
        "serve it with one of:",
        f"  vLLM:      {vllm_command(base_model, name, adapter, lora_r)}",
    ]
    if (jobdir / "Modelfile").is_file():
        lines.append(f"  Ollama:    ollama create {name} -f {_q(jobdir / 'Modelfile')}")
    if (jobdir / "merged.gguf").is_file():
        lines.append(f"  llama.cpp: llama-server -m {_q(jobdir / 'merged.gguf')}")
    elif (jobdir / "adapter.gguf").is_file():
        lines.append(
            f"  llama.cpp: llama-server -m base.gguf --lora {_q(jobdir / 'adapter.gguf')}"
            " (base.gguf: the base model converted, see serve.md)"
        )
    else:
        lines.append("  llama.cpp: convert to GGUF first (see serve.md)")
    lines += [
        'then add an assistant on the matching preset (backend = "vllm", "ollama" or "llamacpp"):',
        "  [assistants.trained]",
        '  backend = "vllm"',
        f'  model = "{name}"',
        'and ask it: modelport ask -a trained "Hello!"',
        f"all the details: {jobdir / 'serve.md'}",
    ]
    return lines


def write_artifacts(
    jobdir: Path,
    *,
    name: str,
    base_model: str,
    base_path: Path,
    adapter: Path,
    merged: Path | None,
    lora_r: int,
    llama_cpp_dir: str | None,
    log: Path,
) -> Artifacts:
    """Write ``serve.md`` and ``Modelfile`` into ``jobdir`` (and GGUF files when llama.cpp is
    there). ``name`` is the adapter's name for the server (the model clients ask for)."""
    files: dict[str, str] = {"adapter": str(adapter)}
    notes: list[str] = []
    if merged is not None:
        files["merged"] = str(merged)

    adapter_gguf = jobdir / "adapter.gguf"
    merged_gguf = jobdir / "merged.gguf"
    why_not = _gguf_unavailable(llama_cpp_dir)
    if why_not is None and llama_cpp_dir:
        ok, problem = convert_gguf(
            llama_cpp_dir,
            LORA_SCRIPT,
            [str(adapter), "--base", str(base_path), "--outfile", str(adapter_gguf)],
            log,
        )
        if ok and adapter_gguf.is_file():
            files["adapter_gguf"] = str(adapter_gguf)
        else:
            notes.append(f"the adapter was not converted to GGUF: {problem or 'no output'}")
        if merged is not None:
            ok, problem = convert_gguf(
                llama_cpp_dir, MERGED_SCRIPT, [str(merged), "--outfile", str(merged_gguf)], log
            )
            if ok and merged_gguf.is_file():
                files["merged_gguf"] = str(merged_gguf)
            else:
                notes.append(
                    f"the merged model was not converted to GGUF: {problem or 'no output'}"
                )
    elif why_not:
        notes.append(why_not)

    # Ollama: FROM a GGUF or a safetensors model directory; ADAPTER a GGUF or safetensors
    # adapter made for that very base model.
    if "merged_gguf" in files:
        modelfile = f"FROM {files['merged_gguf']}\n"
    elif merged is not None:
        modelfile = f"FROM {merged}\n"
    else:
        modelfile = f"FROM {base_path}\nADAPTER {files.get('adapter_gguf', adapter)}\n"
    write_text_atomic(jobdir / "Modelfile", modelfile)
    files["modelfile"] = str(jobdir / "Modelfile")

    vllm = vllm_command(base_model, name, adapter, lora_r)
    lines = [
        f"# Serving {name}",
        "",
        f"Trained from `{base_model}` (`{base_path}`); the LoRA adapter is in `{adapter}`.",
        "",
        "## vLLM (OpenAI-compatible, port 8000)",
        "",
        "```bash",
        vllm,
        "```",
        "",
        f"Clients ask for the model `{name}`. In modelport (the `vllm` preset talks to",
        "localhost:8000), add an assistant to the config and ask it:",
        "",
        "```toml",
        "[assistants.trained]",
        'backend = "vllm"',
        f'model = "{name}"',
        "```",
        "",
        "```bash",
        'modelport ask -a trained "Hello!"',
        "```",
    ]
    if merged is not None:
        lines += ["", f"Or serve the merged model alone: `vllm serve {_q(merged)}`."]
    lines += [
        "",
        "## Ollama (port 11434)",
        "",
        "```bash",
        f"ollama create {name} -f {_q(jobdir / 'Modelfile')}",
        f"ollama run {name}",
        "```",
        "",
        f'In modelport: the same assistant with `backend = "ollama"` and `model = "{name}"`.',
        "Ollama imports safetensors models of the architectures it knows (Llama, Mistral, Gemma,",
        "Qwen2, Phi-3...); for others, convert to GGUF first (below).",
        "",
        "## llama.cpp (port 8080)",
        "",
    ]
    if "adapter_gguf" in files:
        lines += [
            "```bash",
            f"python {_q(Path(llama_cpp_dir or '.') / MERGED_SCRIPT)} {_q(base_path)}"
            f" --outfile base.gguf",
            f"llama-server -m base.gguf --lora {_q(files['adapter_gguf'])}",
            "```",
        ]
    elif "merged_gguf" in files:
        lines += ["```bash", f"llama-server -m {_q(files['merged_gguf'])}", "```"]
    else:
        lines += [
            "Not converted: " + "; ".join(notes) + ".",
            "",
            "By hand, in a llama.cpp checkout:",
            "",
            "```bash",
            f"python {LORA_SCRIPT} {_q(adapter)} --base {_q(base_path)}"
            f" --outfile {_q(adapter_gguf)}",
            f"python {MERGED_SCRIPT} {_q(base_path)} --outfile base.gguf",
            f"llama-server -m base.gguf --lora {_q(adapter_gguf)}",
            "```",
        ]
    lines += ["", "The `llamacpp` preset talks to localhost:8080."]
    write_text_atomic(jobdir / "serve.md", "\n".join(lines) + "\n")
    files["serve"] = str(jobdir / "serve.md")
    return Artifacts(files, tuple(notes))
