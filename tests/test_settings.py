"""The settings table (retracer.settings) is the one source of the trace options:
the trace parser, [tool.retracer], Tracer's keywords and the recorded options
agree with it."""
import inspect

import pytest

from retracer import Tracer, settings
from retracer.cli import parser_for
from retracer.errors import RetracerError


def test_tracer_keywords_are_the_settings():
    params = set(inspect.signature(Tracer.__init__).parameters)
    wanted = {s.name for s in settings.SETTINGS if s.recorded} | {"output"}
    assert wanted <= params, wanted - params
    for name in wanted:
        assert inspect.signature(Tracer.__init__).parameters[name].default is None, name


def test_trace_parser_has_every_flag():
    _, p = parser_for("trace")
    flags = {o for a in p._actions for o in a.option_strings}
    for s in settings.SETTINGS:
        if s.flag:
            assert s.flag in flags, s.flag
            if s.short:
                assert s.short in flags
    assert set(settings.value_flags()) <= flags


def test_defaults_come_from_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = Tracer()
    for s in settings.SETTINGS:
        if s.recorded and s.name != "scope":
            assert getattr(t, s.name) == (s.default if s.name != "only_functions" else None), s.name
    assert t.max_function_count == 100 and t.c_calls is True


def test_config_keys_are_the_table(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text('[tool.retracer]\nmax-function-count = 7\nredact = "a, b"\nscope = "src"\n')
    got = settings.load_config(str(cfg))
    assert got["max_function_count"] == 7 and got["redact"] == ["a", "b"]
    assert got["scope"] == [str(tmp_path / "src")]
    cfg.write_text('[tool.retracer]\nmax-function-cont = 7\n')
    with pytest.raises(RetracerError, match="unknown key 'max-function-cont'.*known keys: benchmarks-root"):
        settings.load_config(str(cfg))
    cfg.write_text('[tool.retracer]\nno-capture = 1\n')
    with pytest.raises(RetracerError, match="'no-capture' .* wrong type"):
        settings.load_config(str(cfg))


def test_a_pyproject_without_retracer_is_not_parsed_and_a_broken_one_with_it_is_one_line(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text('[tool.other]\nbroken = = 1\n')  # another tool's file (and its mistake): not ours to read
    assert settings.load_config(str(cfg)) == {}
    cfg.write_text('[tool.retracer]\nmax-function-count = = 7\n')
    with pytest.raises(RetracerError, match=r"pyproject.toml is not valid TOML \(.*\); fix the file"):
        settings.load_config(str(cfg))


def test_explicit_beats_config_beats_default(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text('[tool.retracer]\nmax-function-count = 7\ntimeout = 3\n')
    t = Tracer(config_file_path=str(cfg), max_function_count=9)
    assert t.max_function_count == 9 and t.timeout == 3.0 and t.max_value_bytes == 1 << 20


@pytest.mark.parametrize("kw, msg", [
    ({"max_function_count": -1}, "--max-function-count (max_function_count) must be 0 or more"),
    ({"timeout": 0}, "--timeout (timeout) must be a positive number"),
    ({"max_value_bytes": 0}, "--max-value-bytes (max_value_bytes) must be a positive number"),
])
def test_bad_values_are_one_line(tmp_path, monkeypatch, kw, msg):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RetracerError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        Tracer(**kw)


def test_recorded_options_are_the_recorded_settings():
    values = settings.resolve({}, {})
    assert set(settings.recorded(values)) == {s.name for s in settings.SETTINGS if s.recorded}


def test_trace_records_the_recorded_settings(tmp_path, monkeypatch):
    from retracer.tracefile import TraceReader
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s.trace"
    with Tracer(output=str(out), max_function_count=3, redact=["pin"]):
        sum(range(10))
    with TraceReader(str(out)) as r:
        opts = r.meta["options"]
    for s in settings.SETTINGS:
        assert (s.name in opts) == s.recorded, s.name
    assert opts["max_function_count"] == 3 and opts["redact"] == ["pin"]
