"""Node mode's pieces that need no daemon: the node config, pod identities, the label keys,
what a bundle records of what made it, waiting for a label."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from datamonfs.cli.node import label_key
from datamonfs.core.encoding import encode
from datamonfs.core.model import Bundle, Input, Process, Provenance
from datamonfs.core.repository import LABEL, Author, Repository
from datamonfs.core.stores import StoreSpec
from datamonfs.core.stores.local import LocalStore
from datamonfs.daemon.node_config import Access, parse
from datamonfs.daemon.pod_identity import (Bindings, Evidence, PodName, is_namespace, parse_pod,
                                           pod_uid_in)
from datamonfs.daemon.protocol import ProtocolError, Refused
from datamonfs.errors import ConfigError, IntegrityError

ADA = Author("Ada", "ada@example.org")
UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def _parse(node: dict):
    return parse(node, "cfg.toml", StoreSpec("file:///s"), ADA)


def test_the_node_config_allow_list_and_its_refusals():
    cfg = _parse({"on_stop": "commit", "namespaces": {
        "team-a": {"read": ["imagery"], "write": ["results"]}, "ops": {"read": ["*"]}}})
    a = cfg.access("team-a")
    assert a.allows("imagery", False) and a.allows("results", False) and a.allows("results", True)
    assert not a.allows("imagery", True) and not a.allows("other", False)
    assert cfg.access("ops").allows("anything", False) and not cfg.access("ops").allows("x", True)
    assert cfg.access("unlisted") == Access() and not Access().allows("x", False)
    assert cfg.on_stop == "commit" and _parse({}).on_stop == "keep"
    for bad in ({"typo": 1}, {"on_stop": "drop"}, {"namespaces": {"Team_A": {}}},
                {"namespaces": {"a": {"read": "imagery"}}}, {"namespaces": {"a": {"rw": []}}},
                {"namespaces": {"a": {"read": ["bad..name"]}}}, {"pod_check_seconds": 0},
                {"pod_check_seconds": True}, {"on_stop": 1}):
        with pytest.raises(ConfigError):
            _parse(bad)


def test_pod_identities_are_parsed_strictly():
    assert parse_pod({"namespace": "team-a", "name": "job-x.7k2"}) == PodName("team-a", "job-x.7k2")
    for bad in ({"namespace": "Team", "name": "p"}, {"namespace": "a", "name": "p_q"},
                {"namespace": "a", "name": "p/q"}, {"namespace": "a", "name": ".."},
                {"namespace": "a" * 64, "name": "p"}, {"namespace": "a", "name": "p" * 254},
                {"namespace": "a", "name": "p", "uid": "x"}, {"namespace": "a"}, "a/p", None,
                {"namespace": 1, "name": "p"}, {"namespace": "-a", "name": "p"}):
        with pytest.raises(ProtocolError):
            parse_pod(bad)
    assert is_namespace("a" * 63) and not is_namespace("a" * 64)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=300),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                          max_size=4),
                    max_leaves=12))
@settings(max_examples=300, deadline=None)
def test_any_pod_field_is_a_pod_or_a_bad_request(obj):
    try:
        pod = parse_pod(obj)
    except ProtocolError as e:
        assert "\n" not in str(e)  # one line, whatever was sent
        return
    assert is_namespace(pod.namespace) and "/" not in pod.name and pod.name not in (".", "..")


def test_the_pod_uid_is_found_in_cgroups_of_both_drivers():
    cgroupfs = f"12:memory:/kubepods/burstable/pod{UID}/3f2a\n0::/\n"
    systemd = ("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
               f"{UID.replace('-', '_')}.slice/cri-containerd-ab12.scope\n")
    assert pod_uid_in(cgroupfs) == pod_uid_in(systemd) == UID
    for none in ("0::/\n", "4:memory:/process_api/9400912ce8ba6685e339c1c47ee06047\n",
                 f"0::/kubepods/pod{UID[:-1]}/x\n", f"0::/x/pod{UID}extra\n",
                 f"0::/kubepods/pod{UID.replace('-', '_', 1)}/x\n"):
        assert pod_uid_in(none) is None, none


def test_bindings_are_one_to_one_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "pods.json")
    b = Bindings(path)
    a, other = PodName("ns", "a"), PodName("ns", "b")
    ev_a, ev_b = Evidence("netns:1", None), Evidence("pod:" + UID, UID)
    b.claim(a, ev_a)
    b.claim(a, ev_a)
    with pytest.raises(Refused, match="comes from pod ns/a; it may not act for ns/b"):
        b.claim(other, ev_a)
    with pytest.raises(Refused, match="another pod's connections"):
        b.claim(a, ev_b)
    b.claim(other, ev_b)
    assert Bindings(path).pods() == {a: "netns:1", other: "pod:" + UID}
    b.forget(a)
    assert Bindings(path).pods() == {other: "pod:" + UID}


@pytest.mark.expect_log("ignoring unreadable pod bindings")
@pytest.mark.parametrize("text", ["[1]", "{not json", '{"pods": 3}'])
def test_unreadable_bindings_are_logged_never_a_crash(tmp_path, text):
    with open(tmp_path / "pods.json", "w") as f:
        f.write(text)
    assert Bindings(str(tmp_path / "pods.json")).pods() == {}


def test_label_keys_are_valid_kubernetes_label_keys():
    assert label_key("imagery", "v1") == "datamonfs.io/cached.imagery.v1"
    long_one = label_key("r" * 60, "l")
    trailing = label_key("repo", "v1.")
    for key in (long_one, trailing, label_key("a_", "b-")):
        name = key.split("/", 1)[1]
        assert len(name) <= 63 and name[0].isalnum() and name[-1].isalnum(), key
    assert label_key("r" * 60, "l") != label_key("r" * 60, "m")


def _bundle(**more) -> Bundle:
    return Bundle("r", "a" * 64, (), "m", "A", "a@b", 1, 0, 0, **more)


def test_provenance_is_absent_when_empty_and_round_trips():
    plain = _bundle()
    assert "inputs" not in plain.to_obj() and "process" not in plain.to_obj()
    made = _bundle(inputs=(Input("r", "b" * 64),), process=Process(("sh", "-c", "x"), "h"))
    obj = made.to_obj()
    assert obj["inputs"] == [{"repo": "r", "bundle": "b" * 64}]
    assert obj["process"] == {"command": ["sh", "-c", "x"], "host": "h"}
    assert Bundle.from_obj(obj, "x", "w").provenance == made.provenance
    assert Process(("a",)).to_obj() == {"command": ["a"]}


@pytest.mark.parametrize("bad", [
    {"inputs": []}, {"inputs": None}, {"inputs": [{"repo": "r"}]},
    {"inputs": [{"repo": "bad..r", "bundle": "b" * 64}]},
    {"inputs": [{"repo": "r", "bundle": "B" * 64}]}, {"inputs": [["r", "b" * 64]]},
    {"inputs": [{"repo": "r", "bundle": "b" * 64}] * 1001},
    {"process": []}, {"process": {}}, {"process": {"command": []}},
    {"process": {"command": "sh -c x"}}, {"process": {"command": ["a\0b"]}},
    {"process": {"command": ["x" * 70_000]}}, {"process": {"command": ["a"], "host": 5}},
    {"process": {"command": ["\ud800"]}}, {"process": {"command": ["a"] * 4097}},
])
def test_hostile_provenance_is_an_integrity_error(bad):
    with pytest.raises(IntegrityError):
        Bundle.from_obj({**_bundle().to_obj(), **bad}, "x", "bundle x")
    with pytest.raises(IntegrityError):
        Provenance.from_obj(bad, "commit request")


@given(st.dictionaries(st.sampled_from(["inputs", "process"]),
                       st.recursive(st.none() | st.integers() | st.text(max_size=70),
                                    lambda c: st.lists(c, max_size=3)
                                    | st.dictionaries(st.sampled_from(
                                        ["repo", "bundle", "command", "host", "x"]), c,
                                        max_size=3), max_leaves=10)))
@settings(max_examples=300, deadline=None)
def test_any_provenance_parses_or_is_refused_and_survives_encoding(obj):
    try:
        made = Provenance.from_obj(obj, "w")
    except IntegrityError:
        return
    encode(made.to_obj())  # what is accepted can be written canonically
    assert Provenance.from_obj(made.to_obj(), "w") == made


def test_wait_ref_returns_as_soon_as_the_label_is_set(tmp_path):
    repo = Repository(LocalStore(str(tmp_path / "s")))
    repo.create_repo("r", "", ADA)
    assert repo.wait_ref("r", LABEL, "ready", timeout=0.3) is None
    os.makedirs(tmp_path / "d")
    from datamonfs.core import ingest

    b, _ = ingest.upload(repo, "r", str(tmp_path / "d"), "m", ADA)
    setter = threading.Timer(0.5, repo.append_ref, ("r", LABEL, "ready", b.id, ADA))
    setter.start()
    try:
        start = time.monotonic()
        head = repo.wait_ref("r", LABEL, "ready", timeout=30)
    finally:
        setter.join()
    assert head.bundle == b.id and time.monotonic() - start < 5  # functional deadline
    assert repo.wait_ref("missing-repo", LABEL, "x", timeout=0) is None
