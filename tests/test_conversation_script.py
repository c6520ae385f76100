"""Conversation scripts: the TOML/JSON loader and the dataclasses, on good and hostile files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peerbot.conversation import Expect, Script, Turn, Update, load_script, parse_script
from peerbot.conversation.loader import MAX_SCRIPT_BYTES
from peerbot.errors import ConfigurationError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(tmp_path: Path, text: str, name: str = "script.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str, name: str = "script.toml") -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_script(write(tmp_path, text, name))
    return str(caught.value)


def test_the_sample_script_loads_with_an_update_expectations_a_barge_in_and_a_silence():
    script = load_script(SAMPLES / "conversation.toml")
    kinds = [type(s).__name__ for s in script.steps]
    assert "Update" in kinds and script.turns
    assert any(t.expect for t in script.turns)
    assert any(t.barge_in_after is not None for t in script.turns)
    assert any(t.silence is not None for t in script.turns)


def test_toml_defaults_apply_to_every_turn_that_does_not_set_its_own(tmp_path):
    script = load_script(write(tmp_path, """
name = "weather"
[defaults]
answer_silence = 0.8
timeout = 9
[[turns]]
say = "Hello."
[[turns]]
say = "What is the weather like?"
timeout = 20
expect = [{ event = "transcript", contains = "weather" }, { event = "reply", contains = "weather" }]
"""))
    assert script.name == "weather"
    first, second = script.turns
    assert (first.answer_silence, first.timeout) == (0.8, 9)
    assert (second.answer_silence, second.timeout) == (0.8, 20)
    assert second.expect == (Expect("transcript", "weather"), Expect("reply", "weather"))
    assert second.expect[0].event_type == "conversation.item.input_audio_transcription.completed"


def test_json_scripts_say_the_same_as_toml_and_audio_paths_are_relative_to_the_script(tmp_path):
    (tmp_path / "stop.wav").write_bytes((SAMPLES / "hello.wav").read_bytes())
    path = write(tmp_path, json.dumps({"turns": [
        {"update": {"instructions": "Be brief.", "temperature": 0.2}},
        {"audio": "stop.wav", "barge_in_after": 0.5},
        {"say": "Sorry, go on."},
        {"silence": 2}]}), "script.json")
    script = load_script(path)
    update, played, said, silent = script.steps
    assert isinstance(update, Update) and update.fields() == {"instructions": "Be brief.", "temperature": 0.2}
    assert isinstance(played, Turn) and played.audio == tmp_path / "stop.wav" and played.barge_in_after == 0.5
    assert isinstance(said, Turn) and said.say == "Sorry, go on."
    assert isinstance(silent, Turn) and silent.silence == 2 and not silent.speaks
    assert script.name == "script"  # the file's stem when the script names none


def test_scripts_built_in_python_are_checked_like_files():
    script = Script([Update(voice="echo"), Turn(say="Hi", barge_in_after=1.0), Turn(say="Stop")])
    assert script.needs_events and len(script.turns) == 2
    with pytest.raises(ConfigurationError, match="turn 1: barge_in_after needs a next turn that says something"):
        Script([Turn(say="Hi", barge_in_after=1.0)])
    with pytest.raises(ConfigurationError, match="not both"):
        Turn(say="Hi", audio="x.wav")
    with pytest.raises(ConfigurationError, match="needs 'contains'"):
        Expect("transcript")
    assert Expect("session.updated").contains is None  # any event of a raw type will do


@pytest.mark.parametrize(("text", "says"), [
    ("turns = []", "needs 'turns'"),
    ('[[turns]]\nsay = "Hi"\nwait = 3', "turn 1: unknown key 'wait'; known: name, say, audio"),
    ('colour = "blue"\n[[turns]]\nsay = "Hi"', "the script: unknown key 'colour'"),
    ('[[turns]]\nsay = 42', "turn 1: say must be a string, got int 42"),
    ('[[turns]]\nsay = "Hi"\ntimeout = "ten"', "turn 1: timeout must be a number of seconds, got str"),
    ('[[turns]]\nsay = "Hi"\ntimeout = true', "turn 1: timeout must be a number of seconds, got bool"),
    ('[[turns]]\nsay = "Hi"\ntimeout = 1e300', "turn 1: timeout must be above 0 s and at most 600 s"),
    ('[[turns]]\nsay = "Hi"\ntimeout = nan', "turn 1: timeout must be a number of seconds"),
    ('[[turns]]\nsay = "Hi"\nanswer_silence = 0.1', "turn 1: answer_silence must be at least 0.3 s"),
    # It could never pass ("the answer went on past the 3 s timeout", though the answer was over).
    ('[[turns]]\nsay = "Hi"\nanswer_silence = 5\ntimeout = 3',
     "turn 1: timeout (3 s) must be longer than answer_silence (5 s)"),
    ('[defaults]\nanswer_silence = 2\n[[turns]]\nsay = "Hi"\ntimeout = 2', "turn 1: timeout (2 s) must be longer"),
    ('[[turns]]\nsay = "Hi"\nbarge_in_after = -1', "turn 1: barge_in_after must be at least 0 s"),
    ('[[turns]]\nsay = "Hi"\n[[turns]]\nsilence = 99999', "turn 2: silence must be above 0 s and at most 600 s"),
    ('[[turns]]\nsay = "Hi"\nsilence = 1', "turn 1: 'silence' is a turn that says nothing"),
    ('[[turns]]\nname = "empty"', "turn 1: a turn needs 'say' (text), 'audio' (a file) or 'silence'"),
    ('[[turns]]\nsay = "   "', "turn 1: say is empty"),
    ('[[turns]]\nsay = "Hi"\nexpect = "hello"', "turn 1: expect must be a list, got str"),
    ('[[turns]]\nsay = "Hi"\nexpect = [{ event = "transcript", contains = 3 }]', "turn 1: expect[0]: contains must be a string"),
    ('[[turns]]\nsay = "Hi"\nexpect = [{ heard = "hi" }]', "turn 1: expect[0]: unknown key 'heard'"),
    ('[[turns]]\nsay = "Hi"\nexpect = ["hi"]', "turn 1: expect[0]: an expectation is a table"),
    ('[[turns]]\nupdate = { voice = "robot" }', "turn 1: update: unknown voice 'robot'"),
    ('[[turns]]\nupdate = { temperature = 7 }', "turn 1: update: temperature must be a number within [0, 1]"),
    ('[[turns]]\nupdate = { speed = 2 }', "turn 1: update: unknown key 'speed'"),
    ('[[turns]]\nupdate = {}', "turn 1: update: an update needs at least one of voice"),
    ('[[turns]]\nupdate = { voice = "echo" }\nsay = "Hi"', "turn 1: an update step holds only 'update', not also say"),
    ('[[turns]]\nupdate = { voice = "echo" }', "a script needs at least one turn"),
    ('[[turns]]\naudio = "missing.wav"', "turn 1: audio: no such file"),
    ('[[turns]]\nsay = "Hi"\nbarge_in_after = 1', "turn 1: barge_in_after needs a next turn"),
    ('[[turns]]\nsay = "Hi"\nbarge_in_after = 1\n[[turns]]\nsilence = 1', "turn 1: barge_in_after needs a next turn"),
    ('name = 5\n[[turns]]\nsay = "Hi"', "name must be a string"),
    ('defaults = 3\n[[turns]]\nsay = "Hi"', "'defaults' must be a table"),
    ('[defaults]\nsay = "Hi"\n[[turns]]\nsay = "Hi"', "defaults: unknown key 'say'"),
    ("[[turns]\nsay =", "not valid TOML"),
    ("turns = 3", "needs 'turns'"),
    ("turns = [1]", "turn 1: a turn is a table (object), got int"),
])
def test_hostile_toml_is_a_configuration_error_naming_the_turn_and_the_field(tmp_path, text, says):
    assert says in refused(tmp_path, text)


@pytest.mark.parametrize(("document", "says"), [
    ("[1, 2]", "a script is a table (object) with 'turns', got list"),
    ('{"turns": [{"say": "Hi", "timeout": null}]}', "turn 1: timeout must be a number of seconds, got NoneType"),
    ('{"turns": [{"say": ["Hi"]}]}', "turn 1: say must be a string, got list"),
    ("{" * 100_000, "not valid JSON"),  # nested too deeply for the parser: refused, not a crash
    ('{"turns": [{"say": "Hi", "timeout": 1e999}]}', "turn 1: timeout must be a number of seconds"),
])
def test_hostile_json_is_a_configuration_error_too(tmp_path, document, says):
    assert says in refused(tmp_path, document, "script.json")


def test_huge_files_too_many_turns_and_too_long_texts_are_refused(tmp_path):
    assert "at most 1000 kB" in refused(tmp_path, "#" * (MAX_SCRIPT_BYTES + 1))
    assert "at most 500 turns" in refused(tmp_path, '[[turns]]\nsilence = 1\n' * 501)
    assert "turn 1: say is 2001 characters; at most 2000" in refused(tmp_path, f'[[turns]]\nsay = "{"a" * 2001}"')
    many = ", ".join('{ event = "transcript", contains = "x" }' for _ in range(21))
    assert "at most 20" in refused(tmp_path, f'[[turns]]\nsay = "Hi"\nexpect = [{many}]')
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00turns")
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_script(tmp_path / "binary.toml")
    with pytest.raises(ConfigurationError, match="cannot read the script"):
        load_script(tmp_path / "absent.toml")


def test_a_parsed_document_needs_no_file():
    script = parse_script({"turns": [{"say": "Hi"}]})
    assert script.name == "conversation" and script.turns[0].say == "Hi"


def test_the_conversation_package_exports_what_it_shows_and_documents_it():
    import importlib
    import inspect

    from test_exports import _public_names

    module = importlib.import_module("peerbot.conversation")
    assert _public_names(module) <= set(module.__all__) and all(hasattr(module, n) for n in module.__all__)
    undocumented = [n for n in module.__all__ if (inspect.isclass(getattr(module, n)) or inspect.isfunction(
        getattr(module, n))) and not inspect.getdoc(getattr(module, n))]
    assert undocumented == []
