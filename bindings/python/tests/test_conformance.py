"""The conformance vectors (tests/conformance/, written by ``cargo xtask
vectors`` from the client's Rust code): this package's codec and policy must
answer every case exactly as the vectors say, like the Rust host's."""

import copy

from api_entreprise import Codec, policy_of
from conftest import vectors

codec = Codec()


def disagreements(file, answer):
    v = vectors(file)
    differ = [c["name"] for c in v["cases"] if answer(v, c) != c["expect"]]
    return len(v["cases"]), differ


def test_the_codec_prepares_every_request_as_the_vectors_say():
    count, differ = disagreements("prepare.json", lambda v, c: codec.prepare(v["base_url"], c["request"], v["now"]))
    assert count > 150
    assert differ == []


def test_the_codec_parses_every_answer_as_the_vectors_say():
    count, differ = disagreements(
        "parse.json", lambda v, c: codec.parse(c["call"], c["status"], c["headers"], c["body"], v["now"])
    )
    assert count > 150
    assert differ == []


def test_the_policy_decides_every_path_as_the_vectors_say():
    count, differ = disagreements("policy.json", lambda v, c: policy_of(c["path"]))
    assert count > 50
    assert differ == []


def test_a_vector_that_lies_is_caught():
    v = vectors("parse.json")
    case = copy.deepcopy(v["cases"][0])
    case["expect"]["ok"]["status"] = 201
    assert codec.parse(case["call"], case["status"], case["headers"], case["body"], v["now"]) != case["expect"]


def test_the_codec_component_imports_nothing():
    from api_entreprise._codec import _component, CODEC_DIR

    engine, component = _component(CODEC_DIR / "api_entreprise_codec.wasm")
    assert list(component.type.imports(engine)) == []


def test_a_trap_costs_a_fresh_instance_and_the_next_call_works(monkeypatch):
    import api_entreprise._codec as module

    c = Codec()
    request = {"endpoint": "pings"}
    monkeypatch.setattr(module, "FUEL_PER_CALL", 1000)
    trapped = c.prepare("https://entreprise.api.gouv.fr", request)
    assert trapped["err"]["tag"] == "other" and "failed" in trapped["err"]["val"]
    monkeypatch.undo()
    assert c.prepare("https://entreprise.api.gouv.fr", request)["ok"]["endpoint"] == "pings"
