"""A UserError is one line: the untrusted names it quotes (a manifest key, a config field)
cannot break it over lines or send escape codes to the terminal."""
from iceaudit.errors import UserError


def test_control_characters_in_a_message_are_escaped():
    err = UserError("unknown key(s) a\nb, \x1b[31mred\x1b[0m, tab\there", hint="line one\nline two")
    assert err.message == "unknown key(s) a\\nb, \\x1b[31mred\\x1b[0m, tab\\there"
    assert "\n" not in err.message and "\x1b" not in err.message
    assert err.hint == "line one\nline two"  # hints may span lines: they are iceaudit's own words


def test_printable_text_is_kept_as_it_is():
    text = "model card café.toml: threshold must be a finite number — got 'x'"
    assert UserError(text).message == text
