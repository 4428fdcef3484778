"""``modelport plugin new``: a new plugin distribution, ready to install, list and test.

The generated plugin offers one backend, named like the plugin, for the capabilities asked:
chat and vision on the HTTP kit (:mod:`modelport.http`), talking to a placeholder API the
author edits (a common chat-completions shape: ``POST /chat/completions``, server-sent events,
``GET /models``); sentiment on the sentiment kit (:mod:`modelport.sentiment`: a tiny lexicon
with negation) and storage on the storage kit (:mod:`modelport.storage`: three primitives over
a dict, in memory), working as generated. Its test module runs modelport's conformance suite for
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
    taken = _taken(name, package)
    if taken:
        raise InvalidInputError(
            f"{name!r} is taken: {taken}",
            hint="choose another name (installed side by side, the two would clash)",
        )
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
        lines.append(
            "- The sentiment lexicon in `backend.py` is a tiny placeholder; `score` is all a "
            "backend writes (`modelport.sentiment` makes the label, from the thresholds "
            "`positive_threshold`, `negative_threshold`, `mixed_min` and `mixed_ratio`)."
        )
    if "storage" in caps:
        lines.append(
            "- The store keeps its records in a dict (nothing persists): write `read`, `scan` "
            "and `commit` for your database (`modelport.storage` keeps every other rule), then "
            "drop `persistent = False` from the tests."
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
    base, kit = "", ""
    if "sentiment" in caps:
        base, kit = "(SentimentSettings)", "\nfrom modelport.sentiment import SentimentSettings\n"
        docs.insert(
            0,
            "    The sentiment thresholds (``positive_threshold``, ``negative_threshold``, "
            "``mixed_min``,\n    ``mixed_ratio``) come from ``SentimentSettings``.\n",
        )
    if not docs:
        docs.append("    It has no keys yet: add yours, each with an ``:ivar:`` line here.")
    return (
        '''"""The keys of a ``[backends.__NAME__]`` section."""

from __future__ import annotations

import attrs
'''
        + kit
        + """

def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value}")


def _fraction(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], not {value}")


@attrs.frozen
class __CLASS__Settings"""
        + base
        + ''':
    """The settings of the ``__NAME__`` backend (an unknown key is an error naming it).

'''
        + "\n".join(docs)
        + '\n    """\n'
        + "".join("\n" + field for field in fields)
        + ("\n" if fields else "")
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
        types.add("Evidence")
    imports = ["from __future__ import annotations", ""]
    stdlib = set()
    abc_names = set()
    if remote:
        stdlib |= {"import json", "from typing import Any"}
        abc_names.add("Sequence")
    if remote:  # _content encodes images, for chat as for vision
        stdlib.add("import base64")
    if "storage" in caps:
        stdlib.add("import threading")
        abc_names |= {"Iterable", "Mapping"}
    if abc_names:
        stdlib.add(f"from collections.abc import {', '.join(sorted(abc_names))}")
    plain = sorted(s for s in stdlib if s.startswith("import "))
    froms = sorted(s for s in stdlib if s.startswith("from "))
    imports += [*plain, *froms, ""] if plain or froms else []
    imports.append(_import("modelport", sorted(types, key=str.lower)))
    if remote:
        imports += [
            "from modelport.errors import ResponseError",
            "from modelport.flows import Flow, ItemFlow, twin, twin_iter",
            "from modelport.http import Event, HTTPClient, Request",
        ]
    if "sentiment" in caps:
        imports.append("from modelport.sentiment import ScoringAnalyzer, weigh_words")
    if "storage" in caps:
        imports.append("from modelport.storage import Key, RecordStore")
    imports += ["", "from .settings import __CLASS__Settings"]
    parts = ['"""The ``__NAME__`` backend: __CAPLIST__."""', "", *imports, "", ""]
    if remote:
        parts.append(_WIRE)
    if "sentiment" in caps:
        parts.append(_LEXICON)
    bases = [
        k for c, k in (("storage", "RecordStore"), ("sentiment", "ScoringAnalyzer")) if c in caps
    ]
    body = [
        f"class __CLASS__Backend({', '.join(bases)}):" if bases else "class __CLASS__Backend:",
        '    """One object serves every capability the backend offers."""',
        "",
    ]
    if "sentiment" in caps:
        body += ["    settings: __CLASS__Settings  # the kit's thresholds, and yours", ""]
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

_LEXICON = """#: A tiny placeholder lexicon (positive weights: a good mood): replace it with yours.
WORDS = {
    **dict.fromkeys(["good", "great", "love", "lovely", "thank", "thanks", "nice"], 1.0),
    **dict.fromkeys(["excellent", "happy"], 1.0),
    **dict.fromkeys(["bad", "terrible", "hate", "awful", "poor", "horrible", "sad"], -1.0),
    **dict.fromkeys(["worst", "broken"], -1.0),
}

"""

_SENTIMENT = """    # --- sentiment: the kit (modelport.sentiment) makes the Sentiment of a score

    def score(self, text: str) -> tuple[float, list[Evidence]]:
        evidence = weigh_words(text, WORDS)  # "not good" turns (and weakens) "good"
        return sum(e.weight for e in evidence) / max(len(evidence), 1), evidence
"""

_STORE_INIT = """        self._lock = threading.Lock()
        self._records: dict[Key, str] = {}  # (table, key) -> a record's JSON"""

_STORE = """    # --- storage: the kit (modelport.storage) keeps every Store rule over these three
    # In memory here (nothing persists): replace them with your database's calls.

    def read(self, table: str, key: str) -> str | None:
        with self._lock:
            return self._records.get((table, key))

    def scan(
        self, table: str, start: str = "", stop: str | None = None
    ) -> Iterable[tuple[str, str]]:
        with self._lock:  # the keys of table in [start, stop), in key order
            keys = sorted(
                k
                for t, k in self._records
                if t == table and start <= k and (stop is None or k < stop)
            )
            return [(k, self._records[(table, k)]) for k in keys]

    def commit(self, writes: Mapping[Key, str | None], expect: Mapping[Key, str | None]) -> bool:
        with self._lock:  # one transaction: all the writes, and only if nothing changed
            if any(self._records.get(k) != v for k, v in expect.items()):
                return False  # another writer got there first: the kit reads again
            for k, v in writes.items():
                if v is None:
                    self._records.pop(k, None)
                else:
                    self._records[k] = v
            return True
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
                "    settings_that_change_results = {",
                '        "positive_threshold": (0.05, 0.5, "Good, nice, bad."),  # then neutral',
                "    }",
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


def _taken(name: str, package: str) -> str | None:
    """What already uses ``name``: an importable package of that name (a shipped plugin's,
    say), or an installed plugin or backend found through the ``modelport`` entry points."""
    import importlib.util
    from importlib.metadata import entry_points

    if importlib.util.find_spec(package) is not None:
        return f"the package {package!r} is installed"
    if any(ep.name == name for ep in entry_points(group="modelport")):
        return f"a plugin named {name!r} is installed"
    from .plugins import make_plugins

    spec = make_plugins().registry.get(name)
    if spec is not None:
        return f"the installed plugin {spec.plugin!r} offers a backend named {name!r}"
    return None
