"""The one LRU: order, weights, dispose, against a plain model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from datamonfs.lru import LRU


def test_order_weight_and_dispose():
    gone = []
    lru = LRU(10, weigh=len, dispose=lambda k, v: gone.append(k))
    lru["a"] = b"1234"
    lru["b"] = b"1234"
    assert lru.get("a") == b"1234"  # a is now the most recent
    lru["c"] = b"1234"  # 12 > 10: b goes
    assert gone == ["b"] and list(lru) == ["a", "c"] and lru.weight == 8
    lru["big"] = b"x" * 50  # heavier than the capacity: kept alone
    assert list(lru) == ["big"] and gone == ["b", "a", "c"]
    assert lru.pop("big") == b"x" * 50 and gone[-1] == "big" and lru.weight == 0
    lru["d"] = b"1"
    lru["d"] = b"22"  # replacing disposes of the old value
    assert gone[-1] == "d" and lru.peek("d") == b"22" and lru.weight == 2
    lru.clear()
    assert len(lru) == 0 and lru.weight == 0 and gone[-1] == "d"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("get set pop".split()), st.integers(0, 6),
                          st.integers(1, 4)), max_size=60), st.integers(1, 8))
def test_matches_a_model(ops, capacity):
    lru = LRU(capacity, weigh=lambda v: v)
    model: list = []  # (key, weight), least recent first
    for op, key, w in ops:
        if op == "get":
            hit = [kv for kv in model if kv[0] == key]
            assert lru.get(key) == (hit[0][1] if hit else None)
            if hit:
                model.remove(hit[0])
                model.append(hit[0])
        elif op == "pop":
            hit = [kv for kv in model if kv[0] == key]
            assert lru.pop(key) == (hit[0][1] if hit else None)
            model = [kv for kv in model if kv[0] != key]
        else:
            model = [kv for kv in model if kv[0] != key] + [(key, w)]
            lru[key] = w
            while sum(v for _, v in model) > capacity and len(model) > 1:
                model.pop(0)
        assert list(lru) == [k for k, _ in model]
        assert lru.weight == sum(v for _, v in model)
