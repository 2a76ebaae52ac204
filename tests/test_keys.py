"""The object-path key grammar, checked against TF's own escaping and the keys TF writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from est_ckpt.format import keys

_NAMES = st.text(alphabet=st.sampled_from(["a", "S", ".", "/", "_", "0", "é"]), max_size=12)


@given(_NAMES)
def test_unescape_inverts_escape(name):
    """Any name made of `.`, `/`, `S` and others survives escape then unescape."""
    assert keys.unescape(keys.escape(name)) == name


@given(st.lists(_NAMES.filter(bool), min_size=1, max_size=4))
def test_join_split_path_round_trip(names):
    """A path of arbitrary edge names splits back into the same names."""
    assert keys.split_path(keys.join_path(names)) == names


@given(_NAMES)
def test_escape_matches_tensorflow(name):
    """Escaping is exactly TF's `escape_local_name`."""
    from tensorflow.python.trackable import trackable_utils

    assert keys.escape(name) == trackable_utils.escape_local_name(name)


def test_plain_replace_gets_dot_dot_s_wrong_but_unescape_does_not():
    """Token-by-token unescaping reads `a..Sb` as `a.Sb`, where the guide's replace gives `a./b`."""
    assert keys.escape("a.Sb") == "a..Sb"
    assert keys.unescape("a..Sb") == "a.Sb"
    assert "a..Sb".replace(".S", "/").replace("..", ".") == "a./b"  # the guide's way: wrong


@pytest.mark.parametrize("bad", ["a.b", "a.", "x/y", ".A"])
def test_unescape_rejects_strings_outside_the_grammar(bad):
    """A lone `.` or a raw `/` is not an escaped name."""
    with pytest.raises(keys.KeyGrammarError):
        keys.unescape(bad)


def test_parse_attribute_and_slot_keys():
    """Attribute and slot keys are taken apart into path, attribute and slot."""
    p = keys.parse_key("var_list/scoped.Sc/.ATTRIBUTES/VARIABLE_VALUE")
    assert p.path == "var_list/scoped.Sc" and p.attribute == "VARIABLE_VALUE" and p.slot is None
    assert p.names == ["var_list", "scoped/c"]
    k = keys.attribute_key(keys.slot_path("model/layer_with_weights-0/kernel", "optimizer", "m"))
    assert k == "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    s = keys.parse_key(k)
    assert s.slot == ("model/layer_with_weights-0/kernel", "optimizer", "m")
    assert keys.parse_key("dense/kernel") is None
    assert keys.parse_key(keys.OBJECT_GRAPH_KEY) is None
    assert keys.variable_key(["var_list", "a.b/c"]) == "var_list/a..b.Sc/.ATTRIBUTES/VARIABLE_VALUE"
    assert keys.strip_value_suffix("v/a/.ATTRIBUTES/VARIABLE_VALUE") == "v/a"


def test_keys_tf_writes_for_dotted_names_parse_back(ckpts):
    """Every variable key TF wrote for names with dots, slashes and S parses back to the name."""
    import tensorflow as tf

    from tests.fixtures import DOTTED_NAMES

    reader = tf.train.load_checkpoint(ckpts("dotted_names"))
    found = set()
    for key in reader.get_variable_to_shape_map():
        parsed = keys.parse_key(key)
        if parsed and parsed.names[0] == "var_list":
            found.add(parsed.names[1])
            assert keys.variable_key(parsed.names) == key
    assert found == set(DOTTED_NAMES)


@pytest.mark.keras2
def test_slot_keys_tf_writes_parse(ckpts):
    """The `.OPTIMIZER_SLOT` keys TF writes parse into variable path, optimizer path and slot."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(ckpts("adam_tf2"))
    slots = {keys.parse_key(k).slot for k in reader.get_variable_to_shape_map() if ".OPTIMIZER_SLOT" in k}
    assert ("model/layer_with_weights-0/kernel", "optimizer", "m") in slots
    assert ("model/layer_with_weights-1/bias", "optimizer", "v") in slots
    assert len(slots) == 8
