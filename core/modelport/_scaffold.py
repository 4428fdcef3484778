"""``modelport plugin new``: a new plugin distribution, ready to install, list and test.

The generated plugin offers one backend, named like the plugin, for the capabilities asked:
chat and vision on the HTTP kit (:mod:`modelport.http`), talking to a placeholder API the
author edits (a common chat-completions shape: ``POST /chat/completions``, server-sent events,
``GET /models``); sentiment and storage in plain Python, working as generated (a tiny lexicon
with negation, an in-memory store). Its test module runs modelport's conformance suite for
each capability, with the placeholder API faked by ``respx``, and passes as generated.

The templates are plain strings with ``__NAME__``-style slots; the core names no vendor, so
the placeholder vendor is the plugin itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import attrs

from .errors import InvalidInputError

__all__ = ["SCAFFOLDED", "Scaffold", "scaffold"]

#: The capabilities ``plugin new`` can scaffold.
SCAFFOLDED = ("chat", "vision", "sentiment", "storage")
_REMOTE = {"chat", "vision"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@attrs.frozen
class Scaffold:
    """What ``plugin new`` wrote: the distribution's directory and its files (relative)."""

    root: Path
    files: tuple[str, ...]
    package: str
    distribution: str


def scaffold(
    name: str, capabilities: Iterable[str], *, http: bool | None, directory: Path
) -> Scaffold:
    """Write a new plugin distribution ``modelport-<name>`` under ``directory``.

    :param http: build chat and vision on the HTTP kit (``None``: yes when one is asked).
    :raises InvalidInputError: for a bad name, an unknown capability, a capability that
        cannot be scaffolded that way, or a directory that exists already.
    """
    caps = list(dict.fromkeys(capabilities))
    if not _NAME.match(name):
        raise InvalidInputError(
            f"{name!r} cannot name a plugin",
            hint="use lower-case letters, digits, '-' and '_', starting with a letter",
        )
    if not caps:
        raise InvalidInputError("no capability given", hint="pass --capability chat, say")
    unknown = [c for c in caps if c not in SCAFFOLDED]
    if unknown:
        raise InvalidInputError(
            f"cannot scaffold {', '.join(map(repr, unknown))}",
            hint=f"choose among {', '.join(SCAFFOLDED)} (a trainer: start from "
            "modelport.backends.Trainer and TrainingConformance)",
        )
    remote = [c for c in caps if c in _REMOTE]
    if http is False and remote:
        raise InvalidInputError(
            f"{' and '.join(remote)} backends are scaffolded on the HTTP kit only",
            hint="drop --no-http, or scaffold sentiment or storage without it",
        )
    package = "modelport_" + name.replace("-", "_")
    distribution = f"modelport-{name}"
    root = directory / distribution
    if root.exists():
        raise InvalidInputError(
            f"{root} exists already", hint="choose another --dir or name; nothing was written"
        )
    slots = {
        "__NAME__": name,
        "__PKG__": package,
        "__DIST__": distribution,
        "__CLASS__": "".join(p.capitalize() for p in re.split(r"[-_]", name) if p),
        "__ENV__": re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_API_KEY",
        "__CAPS__": ", ".join(repr(c) for c in caps).replace("'", '"'),
        "__CAPLIST__": ", ".join(caps),
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _readme(caps),
        f"src/{package}/__init__.py": _INIT,
        f"src/{package}/settings.py": _settings(caps),
        f"src/{package}/backend.py": _backend(caps),
        "tests/test_conformance.py": _tests(caps),
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template
        for slot, value in slots.items():
            text = text.replace(slot, value)
        path.write_text(text, encoding="utf-8")
    return Scaffold(root, tuple(files), package, distribution)


# --- pyproject, README, hooks ------------------------------------------------------------------

_PYPROJECT = """[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "__DIST__"
version = "0.1.0"
description = "A modelport backend for __CAPLIST__."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["modelport>=0.1", "attrs>=24.1", "httpx>=0.27"]

[project.optional-dependencies]
test = ["pytest>=8.0", "respx>=0.21"]

[project.urls]
# A mistake in the [backends.__NAME__] config section points here: document your keys there.
Documentation = "https://example.com/__DIST__#settings"

# How modelport finds the plugin: the entry-point name is the plugin's, the value the module
# holding its hooks.
[project.entry-points.modelport]
__NAME__ = "__PKG__"

[tool.hatch.build.targets.wheel]
packages = ["src/__PKG__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_INIT = '''"""modelport backend ``__NAME__``: __CAPLIST__.

Select it in the config::

    [capabilities]
    # chat = "__NAME__"   (one line per capability it serves)

    [backends.__NAME__]
    # its settings: see settings.py

Importing this module does no I/O: the backend is built lazily, when first needed.
"""

from __future__ import annotations

from modelport import BackendContext, BackendRegistry, hookimpl

from .settings import __CLASS__Settings

__all__ = ["__CLASS__Settings", "modelport_register_backends"]


def _build(context: BackendContext[__CLASS__Settings]) -> object:
    from .backend import __CLASS__Backend  # its dependencies load when first needed

    return __CLASS__Backend(context)


@hookimpl
def modelport_register_backends(registry: BackendRegistry) -> None:
    """Offer the ``__NAME__`` backend."""
    registry.add(
        "__NAME__",
        _build,
        capabilities=[__CAPS__],
        settings=__CLASS__Settings,
        description="__NAME__: __CAPLIST__",
    )
'''


def _readme(caps: list[str]) -> str:
    remote = [c for c in caps if c in _REMOTE]
    lines = [
        "# __DIST__",
        "",
        "A [modelport](https://pypi.org/project/modelport/) plugin: the backend `__NAME__` "
        "for __CAPLIST__.",
        "",
        "```bash",
        "pip install -e '.[test]'",
        "modelport plugins          # lists __NAME__ and what it serves",
        "pytest                     # modelport's conformance suite for each capability",
        "```",
        "",
        "Select it in `modelport.toml`:",
        "",
        "```toml",
        "[capabilities]",
        *[f'{c} = "__NAME__"' for c in caps],
        "",
        "[backends.__NAME__]",
        "# see src/__PKG__/settings.py for the keys",
        "```",
        "",
        "## Settings",
        "",
        "The keys of `[backends.__NAME__]` are the fields of `__CLASS__Settings` "
        "(`src/__PKG__/settings.py`); document them here.",
        "",
        "## What to edit",
        "",
    ]
    if remote:
        lines += [
            "- `backend.py` talks to a placeholder API (`POST /chat/completions`, server-sent "
            "events, `GET /models`): change the request bodies and the readers of the answers "
            "to your API's, and the fake in `tests/test_conformance.py` with them.",
            "- The API key is read from `$__ENV__` (the variable is the `api_key_env` "
            "setting); it is never a setting itself.",
        ]
    if "sentiment" in caps:
        lines.append("- The sentiment lexicon in `backend.py` is a tiny placeholder.")
    if "storage" in caps:
        lines.append(
            "- The store keeps dialogues in memory (nothing persists): back it with your "
            "database, then drop `persistent = False` from the tests."
        )
    return "\n".join(lines) + "\n"


# --- settings ---------------------------------------------------------------------------------


def _settings(caps: list[str]) -> str:
    fields: list[str] = []
    docs: list[str] = []
    if _REMOTE & set(caps):
        fields += [
            '    base_url: str = "https://__NAME__.example/v1"',
            '    model: str = "__NAME__-chat-1"',
        ]
        docs += [
            "    :ivar base_url: the API's URL, which request paths are relative to.",
            "    :ivar model: the model asked when a request names none.",
        ]
        if "vision" in caps:
            fields.append('    vision_model: str = "__NAME__-vision-1"')
            docs.append("    :ivar vision_model: the model that describes images.")
        fields += [
            "    timeout_s: float = attrs.field(default=60.0, validator=_positive)",
            '    api_key_env: str = "__ENV__"',
        ]
        docs += [
            "    :ivar timeout_s: how long to wait for the API, in seconds.",
            "    :ivar api_key_env: the variable holding the API key (never the key itself).",
        ]
    if "sentiment" in caps:
        fields.append("    threshold: float = attrs.field(default=0.2, validator=_fraction)")
        docs.append("    :ivar threshold: the score from which a text is positive (or negative).")
    if "storage" in caps:
        fields.append("    max_dialogues: int = attrs.field(default=100_000, validator=_positive)")
        docs.append("    :ivar max_dialogues: the most dialogues the store keeps.")
    return (
        '''"""The keys of a ``[backends.__NAME__]`` section."""

from __future__ import annotations

import attrs


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value}")


def _fraction(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], not {value}")


@attrs.frozen
class __CLASS__Settings:
    """The settings of the ``__NAME__`` backend (an unknown key is an error naming it).

'''
        + "\n".join(docs)
        + '\n    """\n\n'
        + "\n".join(fields)
        + "\n"
    )


# --- the backend -------------------------------------------------------------------------------


def _backend(caps: list[str]) -> str:  # noqa: PLR0915  (one template, assembled)
    remote = bool(_REMOTE & set(caps))
    types = {"BackendContext"}
    if remote:
        types |= {"ChatRequest", "Message", "ModelInfo", "Reply", "StreamDelta", "Usage"}
    if "vision" in caps:
        types |= {"ImagePart", "TextPart", "VisionRequest"}
    if "sentiment" in caps:
        types |= {"Evidence", "Sentiment", "SentimentLabel"}
    if "storage" in caps:
        types |= {"Dialogue", "DialogueInfo", "JobRecord", "Message", "Page"}
    imports = ["from __future__ import annotations", ""]
    stdlib = set()
    if remote:
        stdlib |= {"import json", "from collections.abc import Sequence", "from typing import Any"}
    if "vision" in caps:
        stdlib.add("import base64")
    if "sentiment" in caps:
        stdlib.add("import re")
    if "storage" in caps:
        stdlib |= {
            "import threading",
            "import uuid",
            "from collections.abc import Sequence",
            "from datetime import UTC, datetime",
            "import attrs",
        }
    plain = sorted(s for s in stdlib if s.startswith("import ") and s != "import attrs")
    froms = sorted(s for s in stdlib if s.startswith("from "))
    imports += [*plain, *froms, ""]
    if "import attrs" in stdlib:
        imports.append("import attrs")
    imports.append(_import("modelport", sorted(types, key=str.lower)))
    errors = []
    if remote:
        errors.append("ResponseError")
    if "storage" in caps:
        errors += ["RecordNotFoundError", "StorageError"]
    if errors:
        imports.append(f"from modelport.errors import {', '.join(errors)}")
    if remote:
        imports += [
            "from modelport.flows import Flow, ItemFlow, twin, twin_iter",
            "from modelport.http import Event, HTTPClient, Request",
        ]
    imports += ["", "from .settings import __CLASS__Settings"]
    parts = ['"""The ``__NAME__`` backend: __CAPLIST__."""', "", *imports, "", ""]
    if remote:
        parts.append(_WIRE)
    if "sentiment" in caps:
        parts.append(_LEXICON)
    body = [
        "class __CLASS__Backend:",
        '    """One object serves every capability the backend offers."""',
        "",
    ]
    if "vision" in caps:
        body += ['    media_types = frozenset({"image/png", "image/jpeg"})', ""]
    body += [
        "    def __init__(self, context: BackendContext[__CLASS__Settings]) -> None:",
        "        self.name, self.settings = context.name, context.settings",
    ]
    if remote:
        body.append(_HTTP_INIT)
    if "storage" in caps:
        body.append(_STORE_INIT)
    body.append("")
    if remote:
        body.append(_CHAT if "chat" in caps else _CHAT_CORE)
    if "vision" in caps:
        body.append(_VISION)
    if "sentiment" in caps:
        body.append(_SENTIMENT)
    if "storage" in caps:
        body.append(_STORE)
    if remote:
        twins = ["    complete, acomplete = twin(_complete)"] if "chat" in caps else []
        if "chat" in caps:
            twins += [
                "    stream, astream = twin_iter(_stream)",
                "    models, amodels = twin(_models)",
            ]
        if "vision" in caps:
            twins.append("    describe, adescribe = twin(_describe)")
        body += twins
    parts.append("\n".join(body).rstrip() + "\n")
    return "\n".join(parts)


_WIRE = '''def _usage(answer: dict[str, Any]) -> Usage:
    usage = answer.get("usage") or {}
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


def _object(backend: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ResponseError(f"the answer is not a JSON object: {answer!r:.80}", backend=backend)
    return answer


def _content(message: Message) -> Any:
    """A message as the placeholder API takes it (edit for yours)."""
    images = [part.image for part in message.images]
    if not images:
        return message.text
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}]
    for image in images:
        url = image.url or f"data:{image.media_type};base64," + base64.b64encode(
            image.data or b""
        ).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts

'''

_HTTP_INIT = """        key = context.secret(self.settings.api_key_env).reveal()
        self.http = HTTPClient(
            self.name,
            self.settings.base_url,
            headers={"Authorization": f"Bearer {key}"},  # masked in every message and log
            timeout_s=self.settings.timeout_s,
            key_env=self.settings.api_key_env,
        )
        self.close, self.aclose = self.http.close, self.http.aclose"""

_CHAT_CORE = """    # --- the placeholder API: edit the bodies and the readers for yours -----------

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        options = request.options
        body: dict[str, Any] = {
            "model": request.model or self.settings.model,
            "messages": [{"role": m.role, "content": _content(m)} for m in request.messages],
            "stream": stream,
        }
        tuning = {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
            "seed": options.seed,
            "stop": list(options.stop) or None,
        }
        body |= {k: v for k, v in tuning.items() if v is not None} | dict(options.extra)
        if options.json_schema is not None:
            body["response_format"] = {"type": "json_schema", "schema": options.json_schema}
        return body

    def _reply(self, answer: Any, request: ChatRequest) -> Reply:
        answer = _object(self.name, answer)
        choices = answer.get("choices")
        message = choices[0].get("message") if isinstance(choices, list) and choices else None
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise ResponseError(f"the answer has no text: {answer!r:.120}", backend=self.name)
        data = None
        if request.options.json_schema is not None:
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise ResponseError(
                    f"asked for JSON, got text that is not: {text[:80]!r}", backend=self.name
                ) from exc
        return Reply(
            text=text,
            model=str(answer.get("model") or request.model or self.settings.model),
            usage=_usage(answer),
            finish_reason=choices[0].get("finish_reason") or "stop",
            data=data,
        )

    def _complete(self, request: ChatRequest) -> Flow[Reply]:
        answer = yield self.http.json(
            Request("POST", "/chat/completions", json=self._body(request, stream=False))
        )
        return self._reply(answer, request)
"""

_CHAT = (
    _CHAT_CORE
    + '''
    def _delta(self, event: Event) -> StreamDelta | None:
        """One server-sent event as a delta; the one with a finish reason ends the stream."""
        if event.data == "[DONE]":
            return None
        chunk = _object(self.name, event.json())
        if "error" in chunk:  # the server failed after it started answering
            raise self.http.event_error(chunk)
        choices = chunk.get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        return StreamDelta(
            text=delta.get("content") or "",
            model=chunk.get("model"),
            finish_reason=choices[0].get("finish_reason"),
            usage=_usage(chunk) if chunk.get("usage") else None,
        )

    def _stream(self, request: ChatRequest) -> ItemFlow[StreamDelta]:
        call = Request("POST", "/chat/completions", json=self._body(request, stream=True))
        yield from self.http.stream(
            call, framing="sse", feed=self._delta, finished=lambda d: d.finish_reason is not None
        )

    def _models(self) -> Flow[Sequence[ModelInfo]]:
        listing = _object(self.name, (yield self.http.json(Request("GET", "/models"))))
        entries = listing.get("data")
        if not isinstance(entries, list):
            raise ResponseError(f"not a model list: {listing!r:.120}", backend=self.name)
        return [
            ModelInfo(id=str(entry["id"]), backend=self.name)
            for entry in entries
            if isinstance(entry, dict) and entry.get("id")
        ]
'''
)

_VISION = """    def _describe(self, request: VisionRequest) -> Flow[Reply]:
        parts: list[TextPart | ImagePart] = [TextPart(request.prompt)]
        parts += [ImagePart(image, detail=request.detail) for image in request.images]
        chat = ChatRequest(
            [Message("user", parts)],
            model=request.model or self.settings.vision_model,
            options=request.options,
        )
        return (yield from self._complete(chat))
"""

_LEXICON = """#: A tiny placeholder lexicon: replace it with a real one (or a model).
POSITIVE = {"good", "great", "love", "lovely", "thank", "thanks", "excellent", "nice", "happy"}
NEGATIVE = {"bad", "terrible", "hate", "awful", "poor", "horrible", "sad", "worst", "broken"}
NEGATIONS = {"not", "no", "never", "isn't", "wasn't", "don't", "doesn't", "didn't", "can't"}
_WORDS = re.compile(r"[\\w']+")

"""

_SENTIMENT = """    def analyze(self, text: str) -> Sentiment:
        evidence: list[Evidence] = []
        negated = False
        for word in _WORDS.findall(text.lower()):
            weight = 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
            if weight:
                weight = -weight if negated else weight  # "not good" is bad
                evidence.append(Evidence(word, weight))
            negated = word in NEGATIONS
        total = sum(e.weight for e in evidence)
        score = max(-1.0, min(1.0, total / max(len(evidence), 1)))
        if score >= self.settings.threshold:
            label = SentimentLabel.POSITIVE
        elif score <= -self.settings.threshold:
            label = SentimentLabel.NEGATIVE
        else:
            label = SentimentLabel.NEUTRAL
        return Sentiment(label, score, evidence, analyzer=self.name)
"""

_STORE_INIT = """        self._lock = threading.Lock()
        self._dialogues: dict[str, Dialogue] = {}
        self._active: dict[str, datetime] = {}  # last activity: the last message's time
        self._jobs: dict[str, JobRecord] = {}"""

_STORE = """    # --- storage: in memory (replace with your database) ------------------------------

    def _dialogue(self, dialogue_id: str) -> Dialogue:
        try:
            return self._dialogues[dialogue_id]
        except KeyError:
            raise RecordNotFoundError(f"no dialogue {dialogue_id!r}") from None

    def _info(self, dialogue: Dialogue) -> DialogueInfo:
        return DialogueInfo(
            id=dialogue.id,
            created_at=dialogue.created_at,
            updated_at=self._active[dialogue.id],
            assistant=dialogue.assistant,
            title=dialogue.title,
            message_count=len(dialogue.messages),
        )

    def create_dialogue(
        self, *, assistant: str | None = None, title: str | None = None
    ) -> DialogueInfo:
        now = datetime.now(UTC)
        dialogue = Dialogue(uuid.uuid4().hex, now, assistant=assistant, title=title)
        with self._lock:
            if len(self._dialogues) >= self.settings.max_dialogues:
                raise StorageError(
                    f"the store holds {self.settings.max_dialogues} dialogues already",
                    hint=f"delete some, or raise [backends.{self.name}] max_dialogues",
                )
            self._dialogues[dialogue.id] = dialogue
            self._active[dialogue.id] = now
            return self._info(dialogue)

    def append(self, dialogue_id: str, *messages: Message) -> None:
        with self._lock:  # the whole turn at once, or nothing
            dialogue = self._dialogue(dialogue_id)
            if not messages:
                return
            now = datetime.now(UTC)
            stamped = [m if m.created_at else attrs.evolve(m, created_at=now) for m in messages]
            self._dialogues[dialogue_id] = attrs.evolve(
                dialogue, messages=(*dialogue.messages, *stamped)
            )
            self._active[dialogue_id] = stamped[-1].created_at or datetime.now(UTC)

    def load_dialogue(self, dialogue_id: str, *, last: int | None = None) -> Dialogue:
        with self._lock:
            dialogue = self._dialogue(dialogue_id)
        if last is None:
            return dialogue
        return attrs.evolve(dialogue, messages=dialogue.messages[-last:] if last > 0 else ())

    def list_dialogues(
        self,
        *,
        assistant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        with self._lock:
            infos = [self._info(d) for d in self._dialogues.values()]
        infos = [
            i
            for i in infos
            if (assistant is None or i.assistant == assistant)
            and (since is None or i.updated_at >= since)
            and (until is None or i.updated_at < until)
        ]
        infos.sort(key=lambda i: i.updated_at, reverse=True)  # newest activity first
        return Page(infos[offset : offset + limit], offset=offset, total=len(infos))

    def delete_dialogue(self, dialogue_id: str) -> None:
        with self._lock:
            self._dialogue(dialogue_id)
            del self._dialogues[dialogue_id], self._active[dialogue_id]

    def save_job(self, record: JobRecord) -> None:
        with self._lock:
            self._jobs[record.job_id] = record

    def load_job(self, job_id: str) -> JobRecord:
        with self._lock:
            try:
                return self._jobs[job_id]
            except KeyError:
                raise RecordNotFoundError(f"no job record {job_id!r}") from None

    def list_jobs(self) -> Sequence[JobRecord]:
        with self._lock:
            return list(self._jobs.values())
"""


def _import(module: str, names: list[str]) -> str:
    """``from module import names``, wrapped as a formatter would."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= 100:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"


# --- the tests ---------------------------------------------------------------------------------


def _tests(caps: list[str]) -> str:
    remote = [c for c in caps if c in _REMOTE]
    suites = {
        "chat": "ChatConformance",
        "vision": "VisionConformance",
        "sentiment": "SentimentConformance",
        "storage": "StoreConformance",
    }
    lines = [
        '"""The ``__NAME__`` backend passes modelport\'s conformance suites."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if remote:
        lines += [
            "import json",
            "from collections.abc import Iterator, Mapping, Sequence",
            "from pathlib import Path",
            "from typing import Any",
            "",
            "import httpx",
            "import pytest",
            "import respx",
            "",
        ]
    lines += [
        "import __PKG__",
        *(["from modelport import Usage"] if remote else []),
        _import("modelport.testing.conformance", [suites[c] for c in suites if c in caps]),
        "",
        'PLUGINS = [("__NAME__", __PKG__)]  # or None: the installed entry point',
        "",
        "",
    ]
    lines += [(_FAKE if remote else _PLAIN).rstrip("\n"), "", ""]
    for cap in caps:
        base = "FakeAPI" if cap in _REMOTE else "Backend"
        lines += [f"class Test{cap.capitalize()}({base}, {suites[cap]}):"]
        if cap == "storage":
            lines.append("    persistent = False  # in memory: drop this once records persist")
        elif cap == "sentiment":
            lines += [
                "    # a setting read but not used passes every other check: this one fails",
                '    settings_that_change_results = {"threshold": (0.2, 0.9, "Good, nice, bad.")}',
            ]
        else:
            lines.append("    pass")
        lines += ["", ""]
    return "\n".join(lines).rstrip() + "\n"


_PLAIN = """class Backend:
    backend = "__NAME__"
    plugins = PLUGINS


"""

_FAKE = """BASE = "https://__NAME__.test/v1"
STATUS = {"auth": 401, "rate_limit": 429, "server": 500, "bad_request": 400}


def _tokens(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def _answer(body: dict[str, Any], text: str, usage: Usage) -> httpx.Response:
    \"\"\"A whole answer, as the placeholder API sends it.\"\"\"
    choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return httpx.Response(
        200, json={"model": body["model"], "choices": [choice], "usage": _tokens(usage)}
    )


def _stream(
    body: dict[str, Any],
    pieces: Sequence[str],
    *,
    usage: Usage | None,
    cut: bool = False,
    error: bool = False,
) -> httpx.Response:
    \"\"\"A streamed answer as server-sent events: a chunk per piece, then the finish reason
    (with the usage) and ``[DONE]``; or cut short; or an error event midway.\"\"\"
    chunks: list[Any] = [
        {"model": body["model"], "choices": [{"delta": {"content": p}}]} for p in pieces
    ]
    if error:
        chunks.append({"error": {"message": "the server broke", "type": "server_error"}})
    elif not cut:
        end: dict[str, Any] = {"model": body["model"], "choices": [{"finish_reason": "stop"}]}
        if usage is not None:
            end["usage"] = _tokens(usage)
        chunks += [end, "[DONE]"]
    events = [c if isinstance(c, str) else json.dumps(c) for c in chunks]
    text = "".join(f"data: {e}\\n\\n" for e in events)
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


class Backend:
    backend = "__NAME__"
    plugins = PLUGINS

    def settings(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"base_url": BASE}

    def env(self) -> Mapping[str, str]:
        return {"__ENV__": "test-key"}


class FakeAPI(Backend):
    \"\"\"The placeholder API, faked at the transport (edit it with backend.py).\"\"\"

    api: respx.MockRouter

    @pytest.fixture(autouse=True)
    def _api(self) -> Iterator[None]:
        with respx.mock(base_url=BASE, assert_all_called=False) as api:
            api.get("/models").respond(json={"data": [{"id": "__NAME__-chat-1"}]})
            self.api = api
            yield

    def _answer_with(self, text: str, usage: Usage) -> None:
        def respond(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if not body.get("stream"):
                return _answer(body, text, usage)
            words = text.split(" ")
            pieces = [w + " " for w in words[:-1]] + [words[-1]]
            return _stream(body, pieces, usage=usage)

        self.api.post("/chat/completions").mock(side_effect=respond)

    def arrange_reply(self, text: str) -> None:
        self._answer_with(text, Usage(7, 3))

    def arrange_complete(self, text: str, *, usage: Usage) -> None:
        self._answer_with(text, usage)

    def arrange_stream(
        self,
        pieces: Sequence[str],
        *,
        usage: Usage | None = None,
        cut: bool = False,
        error_mid_stream: bool = False,
    ) -> None:
        def respond(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            return _stream(body, pieces, usage=usage, cut=cut, error=error_mid_stream)

        self.api.post("/chat/completions").mock(side_effect=respond)

    def arrange_rate_limit(self, retry_after: float) -> None:
        error = {"error": {"message": "slow down", "type": "rate_limit"}}
        headers = {"retry-after": str(retry_after)}
        self.api.post("/chat/completions").respond(429, json=error, headers=headers)

    def arrange_failure(self, kind: str) -> None:
        error = {"error": {"message": f"{kind} happened", "type": kind}}
        self.api.post("/chat/completions").respond(STATUS[kind], json=error)

    def last_request_messages(self) -> Sequence[tuple[str, str]]:
        sent = json.loads(self.api.calls.last.request.content)["messages"]
        return [(m["role"], _text(m["content"])) for m in sent]


"""
