"""Line splitting across chunks, blank lines, and the size limit."""
from router.lines import LineSplitter, Oversized


def test_lines_across_chunks():
    s = LineSplitter(100)
    assert s.feed(b'{"a"') == []
    assert s.feed(b': 1}\n{"b": 2}\n{"c"') == [b'{"a": 1}', b'{"b": 2}']
    assert s.finish() == [b'{"c"']


def test_blank_lines_are_dropped():
    s = LineSplitter(100)
    assert s.feed(b"\n  \n\r\nx\n") == [b"x"]


def test_oversized_line_in_one_chunk():
    s = LineSplitter(10)
    out = s.feed(b"a" * 11 + b"\nok\n")
    assert isinstance(out[0], Oversized) and out[0].size == 11
    assert out[1] == b"ok"


def test_oversized_line_spread_over_chunks_is_never_held_whole():
    s = LineSplitter(10)
    assert s.feed(b'{"msg_id": 7, "x": "') == []
    assert s.feed(b"y" * 1000) == []
    out = s.feed(b'"}\nnext\n')
    assert isinstance(out[0], Oversized)
    assert out[0].head.startswith(b'{"msg_id": 7')
    assert out[0].size == 20 + 1000 + 2
    assert out[1] == b"next"


def test_exactly_at_the_limit_is_fine():
    s = LineSplitter(5)
    assert s.feed(b"12345\n") == [b"12345"]
