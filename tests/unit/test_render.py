"""Reply rendering: exact keys, order and separators."""
import json

import pytest

from router import render


def test_command_success_line():
    body = render.command_result(1, {"success": True, "events": [{"eventType": "UserCreated",
                                                                   "aggregateId": "u"}]})
    assert render.line(body) == (b'{"type": "command_result", "in_reply_to": 1, "success": true, '
                                 b'"events": [{"eventType": "UserCreated", "aggregateId": "u"}]}\n')


def test_command_failure_and_error_forms():
    assert render.command_result(2, {"success": False, "errors": ["Id is required"]}) == {
        "type": "command_result", "in_reply_to": 2, "success": False, "errors": ["Id is required"]}
    assert list(render.command_result(3, {"error": [13, "crash"]})) == [
        "type", "in_reply_to", "code", "text"]


def answer(data):
    """A read side's result for `data`: its JSON text."""
    return {"json": render.dumps(data)}


def test_query_result_and_null():
    assert render.line(render.query_result(4, answer(None))) == (
        b'{"type": "query_result", "in_reply_to": 4, "data": null}\n')


@pytest.mark.parametrize("msg_id", [7, "m-7", None, {"a": [1]}, 2.5])
@pytest.mark.parametrize("envelope", [False, True])
def test_a_spliced_query_reply_is_the_line_json_dumps_would_write(msg_id, envelope):
    data = {"id": "u1", "name": "Zoë \"q\"", "list": [1, None, True]}
    body = {"type": "query_result", "in_reply_to": msg_id, "data": data}
    want = {"src": "n1", "dest": "c1", "body": body} if envelope else body
    got = render.line(render.query_result(msg_id, answer(data)), envelope, src="c1", dest="n1")
    assert got == (json.dumps(want) + "\n").encode()


def test_envelope_swaps_src_and_dest():
    out = render.line(render.init_ok(1), envelope=True, src="c1", dest="n1")
    assert out == b'{"src": "n1", "dest": "c1", "body": {"type": "init_ok", "in_reply_to": 1}}\n'


def test_non_ascii_is_escaped():
    assert render.line(render.query_result(1, answer("Zoë"))).endswith(b'"Zo\\u00eb"}\n')


def test_spliced_map_unpacks_like_a_packed_one():
    from common import wire

    items = [{"position": 1}, {"position": 2, "data": {"x": [1, 2]}}]
    spliced = wire.splice_map({"head": 9, "req": 3}, "events", [wire.pack(i) for i in items])
    assert wire.unpack(spliced) == {"head": 9, "req": 3, "events": items}


@pytest.mark.parametrize("body", [
    {"type": "query_result", "in_reply_to": 1, "data": {"name": "Zoë \u2603 \"q\" \\ \n", "n": 1.5,
                                                         "big": 2 ** 70, "neg": -3, "no": None,
                                                         "t": True, "list": [1, [2, {}], []]}},
    {"type": "error", "in_reply_to": None, "code": 12, "text": "x"},
    {"inf": float("inf"), "nan": float("nan"), "e": 1e20},
])
def test_dumps_writes_exactly_what_json_dumps_writes(body):
    assert render.dumps(body) == json.dumps(body)


def test_dumps_refuses_what_json_dumps_refuses():
    with pytest.raises(TypeError):
        render.dumps({"x": object()})


def test_a_reply_held_as_a_function_is_rendered_at_its_turn():
    from router.order import OrderBuffer

    buffer = OrderBuffer()
    seen = []
    buffer.put(2, lambda before: (seen.append(before), b"stats\n")[1])
    buffer.put(1, b"b\n")
    assert buffer.take() == [] and seen == []  # reply 0 is still missing
    buffer.put(0, b"a\n")
    assert buffer.take() == [b"a\n", b"b\n", b"stats\n"]
    assert seen == [2]  # rendered once, knowing two replies went out before it
