"""Settings precedence (arguments > environment > headwater.toml > defaults) and secret handling."""

from pathlib import Path

import pytest

from headwater.config import load_settings
from headwater.errors import ConfigError


def test_paths_hang_off_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(home=tmp_path / "h")
    assert s.warehouse == tmp_path / "h" / "warehouse" / "warehouse.duckdb"
    assert s.source_db == tmp_path / "h" / "sources" / "oltp.sqlite"


def test_arguments_beat_environment_beat_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("headwater.toml").write_text('[headwater]\nhome = "from-file"\nlarge_refund_threshold = 100\n')
    assert load_settings().home == Path("from-file")
    assert load_settings().large_refund_threshold == 100
    monkeypatch.setenv("HEADWATER_HOME", "from-env")
    assert load_settings().home == Path("from-env")
    assert load_settings(home=Path("from-arg")).home == Path("from-arg")


def test_bad_values_are_one_line_config_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADWATER_LARGE_REFUND_THRESHOLD", "lots")
    with pytest.raises(ConfigError, match="invalid setting 'large_refund_threshold'"):
        load_settings()
    monkeypatch.delenv("HEADWATER_LARGE_REFUND_THRESHOLD")
    Path("headwater.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_urls_with_tokens_never_print(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADWATER_ALERT_WEBHOOK_URL", "https://hooks.example/T0K3N")
    s = load_settings()
    assert s.alert_webhook_url is not None
    assert s.alert_webhook_url.get_secret_value() == "https://hooks.example/T0K3N"
    assert "T0K3N" not in repr(s) and "T0K3N" not in str(s)
