"""Settings: keyword arguments > ``MLOOP_*`` environment > ``mloop.toml`` > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.config import DEFAULT_FLAVORS, Settings
from mloop.errors import ConfigError, UnknownFlavorError


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray mloop.toml


def test_defaults_with_nothing_configured(tmp_path: Path) -> None:
    s = Settings()
    assert s.home == Path(".mloop") and s.home_path == (tmp_path / ".mloop").resolve()
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve() / '.mloop' / 'mloop.db'}"
    assert s.executor == "local" and s.max_parallel == 4 and s.database_url is None
    assert set(s.flavors) == set(DEFAULT_FLAVORS)


def test_keywords_beat_environment_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mloop.toml").write_text("[mloop]\nmax_parallel = 2\nlog_tail_lines = 7\nexecutor = 'ray'\n")
    monkeypatch.setenv("MLOOP_MAX_PARALLEL", "3")
    monkeypatch.setenv("mloop_log_tail_lines", "9")  # names match whatever their case
    s = Settings(executor="local")
    assert (s.max_parallel, s.log_tail_lines, s.executor) == (3, 9, "local")
    assert Settings(MAX_PARALLEL=5).max_parallel == 5


def test_toml_at_top_level_or_named_by_mloop_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mloop.toml").write_text("home = '/srv/mloop'\n")
    assert Settings().home == Path("/srv/mloop")
    other = tmp_path / "other.toml"
    other.write_text("[mloop]\nhome = '/srv/other'\n")
    monkeypatch.setenv("MLOOP_CONFIG", str(other))
    assert Settings().home == Path("/srv/other")
    monkeypatch.setenv("MLOOP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        Settings()


def test_flavor_tables_merge_across_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mloop.toml").write_text("[mloop.flavors.big]\ngpu = 3\n[mloop.flavors.tiny]\ncpu = 0.5\n")
    monkeypatch.setenv("MLOOP_FLAVORS", '{"big": {"cpu": 99}}')
    s = Settings(flavors={"big": {"memory_gb": 1}})
    assert s.flavor("big").model_dump() == {"cpu": 99, "gpu": 3, "memory_gb": 1, "resources": {}, "description": ""}
    assert s.flavor("tiny").cpu == 0.5
    assert s.flavor("cpu.small") == DEFAULT_FLAVORS["cpu.small"]  # the defaults stay
    with pytest.raises(UnknownFlavorError, match="huge") as exc:
        s.flavor("huge")
    assert "tiny" in (exc.value.hint or "")


def test_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_FLAVORS", "{not json")
    with pytest.raises(ConfigError, match="MLOOP_FLAVORS is not valid JSON") as exc:
        Settings()
    assert exc.value.hint
    monkeypatch.delenv("MLOOP_FLAVORS")
    monkeypatch.setenv("MLOOP_EXECUTOR", "k8s")
    # A ConfigError naming the key, not pydantic's ValidationError traceback (issue 9, item 11).
    with pytest.raises(ConfigError, match="executor"):
        Settings()
    monkeypatch.delenv("MLOOP_EXECUTOR")
    (tmp_path / "mloop.toml").write_text("max_parallel = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings()


def test_empty_environment_value_is_kept_and_none_keyword_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_DATABASE_URL", "sqlite:///env.db")
    assert Settings().database_url == "sqlite:///env.db"
    assert Settings(database_url=None).database_url is None
    monkeypatch.setenv("MLOOP_TOKEN", "")
    assert Settings().token == ""


class TestBadSettings:
    """A bad value names its key and where it came from; a misspelled key is refused with the
    closest one, instead of running on the defaults (issue 9, item 11)."""

    def test_a_bad_environment_value_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOOP_MAX_PARALLEL", "abc")
        with pytest.raises(ConfigError, match=r"max_parallel = 'abc' \(MLOOP_MAX_PARALLEL\)"):
            Settings()

    def test_a_bad_toml_value_names_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "mloop.toml").write_text("[mloop]\nmax_parallel = 'many'\n[mloop.flavors.big]\ncpu = 'x'\n")
        with pytest.raises(ConfigError) as caught:
            Settings()
        message = caught.value.message
        assert "max_parallel = 'many' (mloop.toml)" in message and "flavors.big.cpu = 'x'" in message

    @pytest.mark.parametrize("typo, meant", [("databse_url", "database_url"), ("max_paralel", "max_parallel"),
                                             ("Home", "home")])
    def test_a_misspelled_toml_key_is_refused_with_the_closest(self, tmp_path: Path, typo: str, meant: str) -> None:
        (tmp_path / "mloop.toml").write_text(f"[mloop]\n{typo} = 'x'\n")
        with pytest.raises(ConfigError, match=f"unknown setting '{typo}' \\(did you mean '{meant}'\\?\\)"):
            Settings()

    def test_other_mloop_variables_are_left_alone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLOOP_RUN_ID", "abc")  # what a job's own environment holds
        assert Settings().max_parallel == 4
