"""What ``modelport config show`` prints for an OpenAI(-compatible) backend: its section laid
over its preset and the environment, as the backend will use it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from modelport import EffectiveSetting

from ._settings import PRESETS, resolve

if TYPE_CHECKING:
    from ._settings import OpenAISettings

__all__ = ["effective"]

#: Settings the preset may fill in from an environment variable of its own.
_FROM_ENV = {"organization": "OPENAI_ORG_ID", "project": "OPENAI_PROJECT_ID"}


def effective(
    backend: str, settings: OpenAISettings, env: Mapping[str, str]
) -> dict[str, EffectiveSetting]:
    """Each key of :class:`OpenAISettings` with the value the backend uses.

    :raises modelport.errors.ConfigError: when the section cannot be resolved (a required
        base URL is missing, say), as building the backend would.
    """
    resolved = resolve(backend, settings, env)
    preset = PRESETS[backend]
    shown: dict[str, EffectiveSetting] = {}
    for field in attrs.fields(type(settings)):
        name = field.name
        own = getattr(settings, name)
        if not hasattr(resolved, name):
            shown[name] = EffectiveSetting(own)  # the section's (or its default)
            continue
        value = getattr(resolved, name)
        if own is not None and not (isinstance(own, Mapping) and not own):
            shown[name] = EffectiveSetting(value)  # set in the section (tables: over the preset)
            continue
        source = "default"
        if name == "base_url" and preset.base_url_env and env.get(preset.base_url_env):
            source = f"env:{preset.base_url_env}"
        elif name in _FROM_ENV and backend == "openai" and env.get(_FROM_ENV[name]):
            source = f"env:{_FROM_ENV[name]}"
        shown[name] = EffectiveSetting(value, source)
    return shown
