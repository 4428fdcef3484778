"""Settings: file, then environment, then arguments; every mistake names file and key."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from modelport import Secret, load_settings, read_secret
from modelport.config import find_config_file
from modelport.errors import ConfigError, MissingSecretError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_at_all_gives_working_defaults() -> None:
    settings = load_settings(env={})
    assert settings.path is None
    assert settings.retry.attempts == 4
    assert settings.capabilities.chat is None
    assert settings.assistant(None)[0] is None


def test_file_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_dir = tmp_path / "xdg" / "modelport"
    user_dir.mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = write(user_dir / "modelport.toml", "[retry]\nattempts = 2\n")
    assert find_config_file(env={}) == user
    local = write(Path("modelport.toml"), "[retry]\nattempts = 3\n")
    assert find_config_file(env={}) == local
    named = write(tmp_path / "named.toml", "[retry]\nattempts = 5\n")
    assert find_config_file(env={"MODELPORT_CONFIG": str(named)}) == named
    explicit = write(tmp_path / "explicit.toml", "[retry]\nattempts = 6\n")
    assert find_config_file(explicit, env={"MODELPORT_CONFIG": str(named)}) == explicit
    assert load_settings(env={}).retry.attempts == 3


def test_environment_overrides_file_and_arguments_override_both(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.toml",
        '[capabilities]\nchat = "from-file"\nstorage = "files"\n[retry]\nattempts = 2\n',
    )
    env = {
        "MODELPORT_CAPABILITIES__CHAT": "from-env",
        "MODELPORT_RETRY__ATTEMPTS": "7",
        "MODELPORT_RETRY__MAX_S": "2.5",
        "MODELPORT_BACKENDS__ACME__VERBOSE": "true",
    }
    settings = load_settings(path, env=env, overrides={"retry": {"attempts": 9}})
    assert settings.capabilities.chat == "from-env"
    assert settings.capabilities.storage == "files"
    assert (settings.retry.attempts, settings.retry.max_s) == (9, 2.5)
    assert settings.backends["acme"] == {"verbose": True}
    assert settings.path == str(path)


def test_plugin_variables(tmp_path: Path) -> None:
    env = {
        "MODELPORT_DISABLE_PLUGINS": "a, b",
        "MODELPORT_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MODELPORT_PLUGINS": "my.plugin",
    }
    plugins = load_settings(env=env).plugins
    assert (plugins.disable, plugins.autoload, plugins.load) == (("a", "b"), False, ("my.plugin",))


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", "[retry]\nattempts = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: invalid TOML")
    assert "line 2" in message
    assert "fix the syntax" in message


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", "[retry]\nattempst = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == "retry.attempst"
    assert str(info.value).startswith(f"{path}, key 'retry.attempst': unknown key 'attempst'")


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", '[retry]\nattempts = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == "retry.attempts"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="MODELPORT_CONFIG"):
        load_settings(env={"MODELPORT_CONFIG": str(tmp_path / "nope.toml")})


def test_unknown_top_level_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"MODELPORT_RETRI__ATTEMPTS": "2"})
    assert "retri" in str(info.value)


@attrs.frozen
class AcmeSettings:
    model: str = "acme-1"
    timeout: float = 30.0
    api_key_env: str = "ACME_API_KEY"


def test_backend_section_is_structured_into_its_settings_class(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", '[backends.acme]\nmodel = "acme-2"\ntimeout = 5\n')
    settings = load_settings(path, env={})
    assert settings.backend_settings("acme", AcmeSettings) == AcmeSettings("acme-2", 5.0)
    assert settings.backend_settings("other", AcmeSettings) == AcmeSettings()


def test_mistyped_backend_key_is_named_with_file(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", '[backends.acme]\nmodle = "acme-2"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}).backend_settings("acme", AcmeSettings)
    assert str(info.value).startswith(f"{path}, key 'backends.acme.modle': unknown key 'modle'")


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be more than 0, not {value}")


def _short(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if len(value) > 3:
        raise ValueError("too long")


@attrs.frozen
class Limits:
    burst: float = attrs.field(default=1.0, validator=_positive)


@attrs.frozen
class CheckedSettings:
    timeout_s: float = attrs.field(default=30.0, validator=_positive)
    tag: str = attrs.field(default="a", validator=[_short])
    model: str = attrs.field(default="m", validator=attrs.validators.min_len(1))
    retries: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    limits: Limits = Limits()


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("timeout_s = -1", "timeout_s", "must be more than 0, not -1.0"),
        ('tag = "abcd"', "tag", "too long"),  # in a list of validators
        ('model = ""', "model", "Length of 'model' must be >= 1: 0"),
        ("retries = -2", "retries", "must be >= 0, not -2"),  # attrs' own shape, as before
        ("limits = { burst = 0 }", "limits.burst", "must be more than 0, not 0.0"),
    ],
)
def test_any_validator_s_error_names_its_key(
    tmp_path: Path, section: str, key: str, message: str
) -> None:
    path = write(tmp_path / "m.toml", f"[backends.acme]\n{section}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}).backend_settings("acme", CheckedSettings)
    assert info.value.key == f"backends.acme.{key}"
    assert str(info.value).startswith(f"{path}, key 'backends.acme.{key}': {message} (")


def test_a_validator_s_error_from_the_environment_names_its_key() -> None:
    settings = load_settings(env={"MODELPORT_BACKENDS__ACME__TIMEOUT_S": "-5"})
    with pytest.raises(ConfigError) as info:
        settings.backend_settings("acme", CheckedSettings)
    assert info.value.key == "backends.acme.timeout_s"
    assert "MODELPORT_BACKENDS__ACME__TIMEOUT_S" in str(info.value)
    assert "must be more than 0, not -5.0" in str(info.value)


def test_api_key_in_a_file_is_refused_with_a_pointer_to_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", '[backends.acme]\napi_key = "sk-live-123456789"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={}).backend_settings("acme", AcmeSettings)
    assert "environment variables" in str(info.value)
    assert "sk-live" not in str(info.value)


def test_assistants_are_named_profiles(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.toml",
        'default_assistant = "support"\n'
        '[assistants.support]\nmodel = "m1"\ninstructions = "Be kind."\nbackend = "acme"\n'
        "[assistants.support.options]\ntemperature = 0.2\nstop = ['END']\n",
    )
    settings = load_settings(path, env={})
    name, profile = settings.assistant(None)
    assert name == "support"
    assert (profile.model, profile.instructions, profile.backend) == ("m1", "Be kind.", "acme")
    assert profile.options.temperature == 0.2
    assert profile.options.stop == ("END",)
    with pytest.raises(ConfigError, match=r"no assistant named 'sales'.*known: support"):
        settings.assistant("sales")


def test_dangling_default_assistant_fails_at_load(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", 'default_assistant = "ghost"\n')
    with pytest.raises(ConfigError, match="ghost"):
        load_settings(path, env={})


def test_secrets_never_print_their_value() -> None:
    secret = read_secret("ACME_API_KEY", env={"ACME_API_KEY": "sk-live-abcdef123456"})
    assert secret.reveal() == "sk-live-abcdef123456"
    for shown in (repr(secret), str(secret), f"{secret}", repr([secret])):
        assert "sk-live" not in shown
        assert "ACME_API_KEY" in shown
    assert isinstance(secret, Secret)


@pytest.mark.parametrize("env", [{}, {"ACME_API_KEY": "  "}])
def test_missing_secret_says_which_variable_to_set(env: dict[str, str]) -> None:
    with pytest.raises(MissingSecretError) as info:
        read_secret("ACME_API_KEY", backend="acme", env=env)
    assert str(info.value) == (
        "backend 'acme' needs the environment variable ACME_API_KEY (an API key), which is not "
        "set (export ACME_API_KEY=... before running; keys are never read from config files)"
    )


def test_redacted_settings_mask_secret_looking_keys() -> None:
    settings = load_settings(env={"MODELPORT_BACKENDS__ACME__AUTH_TOKEN": "abc"}, search=False)
    assert settings.redacted()["backends"]["acme"] == {"auth_token": "***"}
