import pytest

from bot.config import ConfigError, load_settings


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLEBOT_DISCORD_TOKEN", "secret-token-value")
    monkeypatch.setenv("STYLEBOT_DEV_GUILD", "123")
    monkeypatch.setenv("STYLEBOT_DEVICES", "cuda:0, cuda:1")
    settings = load_settings()
    assert settings.dev_guild == 123 and settings.device_list == ("cuda:0", "cuda:1")
    assert settings.database_url == "sqlite+aiosqlite:///stylebot.db"
    assert "secret-token-value" not in repr(settings) and "secret-token-value" not in str(
        settings.model_dump()
    )


def test_dotenv_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STYLEBOT_DISCORD_TOKEN", raising=False)
    (tmp_path / ".env").write_text("STYLEBOT_DISCORD_TOKEN=from-dotenv\nSTYLEBOT_MAX_QUEUED=7\n")
    settings = load_settings()
    assert settings.discord_token.get_secret_value() == "from-dotenv" and settings.max_queued == 7


def test_errors_name_the_variable_and_never_the_token(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STYLEBOT_DISCORD_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="STYLEBOT_DISCORD_TOKEN is not set"):
        load_settings()
    monkeypatch.setenv("STYLEBOT_DISCORD_TOKEN", "secret-token-value")
    monkeypatch.setenv("STYLEBOT_WORKERS_PER_DEVICE", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "STYLEBOT_WORKERS_PER_DEVICE" in str(info.value) and "secret-token-value" not in str(
        info.value
    )


def test_a_misspelt_token_variable_gets_did_you_mean_when_loading_fails(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STYLEBOT_DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("STYLEBOT_DISCORD_TOKN", "secret-token-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "STYLEBOT_DISCORD_TOKEN is not set" in message
    assert (
        "STYLEBOT_DISCORD_TOKN is not a setting and is ignored; did you mean STYLEBOT_DISCORD_TOKEN?"
        in message
    )
    assert "secret-token-value" not in message


def test_log_level_in_any_case(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLEBOT_DISCORD_TOKEN", "x")
    monkeypatch.setenv("STYLEBOT_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
