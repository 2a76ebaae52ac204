"""est_ckpt.tf.flags: definition, parse-time validation, and the settings and scaffolds the flags build."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

pytest.importorskip("tensorflow")  # est_ckpt.tf is the TensorFlow layer.

from est_ckpt.tf import flags as ckpt_flags  # noqa: E402
from est_ckpt.tf.flags import CheckpointFlags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args: str) -> flags.FlagValues:
    """Defines the est_ckpt flags in a fresh FlagValues and parses `args` into it."""
    fv = flags.FlagValues()
    ckpt_flags.define_flags(fv)
    fv(["prog", *args])
    return fv


# -- definition ---------------------------------------------------------------------


def test_define_flags_twice_is_harmless():
    """Defining the flags twice in one FlagValues (two modules of one script) neither fails nor duplicates validators."""
    fv = flags.FlagValues()
    ckpt_flags.define_flags(fv)
    validators = len(fv["warm_start_map"].validators)
    ckpt_flags.define_flags(fv)
    assert len(fv["warm_start_map"].validators) == validators
    fv(["prog", "--ckpt_format=both"])
    assert ckpt_flags.read_flags(fv).ckpt_format == "both"
    assert set(ckpt_flags.FLAG_NAMES) <= set(fv)


def test_flag_of_another_module_with_our_name_is_a_duplicate():
    """A flag named like ours but defined by another module is absl's DuplicateFlagError, not silently shared."""
    fv = flags.FlagValues()
    flags.DEFINE_string("warm_start_from", None, "someone else's", flag_values=fv)
    with pytest.raises(flags.DuplicateFlagError, match="warm_start_from"):
        ckpt_flags.define_flags(fv)


def test_defaults_need_no_flags():
    """With no flag given: tf2, restore_legacy on, no warm start."""
    fv = parse()
    assert ckpt_flags.read_flags(fv) == CheckpointFlags()
    assert CheckpointFlags() == CheckpointFlags(None, ".*", {}, "tf2", True)
    assert ckpt_flags.warm_start_from_flags(fv) is None


def test_read_flags_needs_parsed_flags():
    """Reading unparsed flags raises absl's UnparsedFlagAccessError instead of returning defaults."""
    fv = flags.FlagValues()
    ckpt_flags.define_flags(fv)
    with pytest.raises(flags.UnparsedFlagAccessError):
        ckpt_flags.read_flags(fv)


def test_read_flags_needs_define_flags():
    """Reading flags that were never defined says to call define_flags."""
    fv = flags.FlagValues()
    fv(["prog"])
    with pytest.raises(KeyError, match=r"call est_ckpt.tf.flags.define_flags\(\)"):
        ckpt_flags.read_flags(fv)


# -- parse-time validation -------------------------------------------------------------


def test_values_are_normalised():
    """Scopes split at commas, map entries split at the last '=', in order."""
    fv = parse(
        "--warm_start_from=/ckpt",
        "--warm_start_vars=dnn/, linear/",
        "--warm_start_map=old/=new/",
        "--warm_start_map=vars/0=new/w",
        "--warm_start_map=a=b=c/d",
        "--ckpt_format=both",
        "--norestore_legacy",
    )
    assert ckpt_flags.read_flags(fv) == CheckpointFlags(
        warm_start_from="/ckpt",
        vars_to_warm_start=("dnn/", "linear/"),
        assignment_map={"old/": "new/", "vars/0": "new/w", "a=b": "c/d"},
        ckpt_format="both",
        restore_legacy=False,
    )
    assert list(ckpt_flags.read_flags(fv).assignment_map) == ["old/", "vars/0", "a=b"]


def test_a_regex_without_comma_stays_a_regex():
    """--warm_start_vars without a comma is one regex, as TF's vars_to_warm_start string."""
    fv = parse("--warm_start_from=/ckpt", "--warm_start_vars=v2/classifier/(kernel|bias)$")
    assert ckpt_flags.read_flags(fv).vars_to_warm_start == "v2/classifier/(kernel|bias)$"


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            ["--ckpt_format=tf3"],
            "flag --ckpt_format=tf3: value should be one of <tf2|tf1|both>",
            id="format",
        ),
        pytest.param(
            ["--restore_legacy=maybe"],
            "flag --restore_legacy=maybe: ('Non-boolean argument to boolean flag'",
            id="bool",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_vars=(("],
            "flag --warm_start_vars=((: --warm_start_vars: '((' is not a valid regular expression",
            id="regex",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_vars=a/,,b/"],
            "flag --warm_start_vars=a/,,b/: --warm_start_vars ('a/,,b/') holds an empty scope",
            id="empty_scope",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_map=old"],
            "flag --warm_start_map=['old']: --warm_start_map entry 'old' must be SRC=DST with both sides non-empty",
            id="no_equals",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_map==new/"],
            "flag --warm_start_map=['=new/']: --warm_start_map entry '=new/' must be SRC=DST",
            id="empty_source",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_map=old/v=new/"],
            "flag --warm_start_map=['old/v=new/']: --warm_start_map entry 'old/v=new/' maps the variable "
            "'old/v' onto the scope 'new/': a scope target needs a scope source ending in '/'",
            id="var_to_scope",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_map=old/=new/v"],
            "flag --warm_start_map=['old/=new/v']: --warm_start_map entry 'old/=new/v' maps the scope 'old/' "
            "onto the variable 'new/v'",
            id="scope_to_var",
        ),
        pytest.param(
            ["--warm_start_from=/c", "--warm_start_map=a/=b/", "--warm_start_map=a/=c/"],
            "--warm_start_map names the source 'a/' twice ('a/=b/' and 'a/=c/'): give each source once.",
            id="duplicate_source",
        ),
        pytest.param(
            ["--warm_start_map=a/=b/"],
            "--warm_start_vars and --warm_start_map only apply with --warm_start_from=<model dir or checkpoint>.",
            id="map_without_source",
        ),
        pytest.param(
            ["--warm_start_vars=.*"],
            "--warm_start_vars and --warm_start_map only apply with --warm_start_from",
            id="vars_without_source",
        ),
        pytest.param(["--warm_start_from= "], "--warm_start_from is empty", id="blank_source"),
    ],
)
def test_invalid_values_fail_at_parse_time(args, message):
    """A bad value fails while parsing, with absl's error naming the flag and the rule."""
    with pytest.raises(flags.IllegalFlagValueError) as e:
        parse(*args)
    assert message in str(e.value)


def test_validators_do_not_touch_the_file_system(tmp_path):
    """A --warm_start_from that does not exist parses; validate_paths (for main) is where it fails."""
    missing = str(tmp_path / "nowhere")
    fv = parse(f"--warm_start_from={missing}")
    with pytest.raises(Exception) as e:
        ckpt_flags.validate_paths(fv)
    assert type(e.value).__name__ == "UsageError"
    assert str(e.value).startswith(f"--warm_start_from={missing}: ")
    ckpt_flags.validate_paths(parse())


def test_global_flags_are_the_default():
    """Without `flag_values`, the helpers read absl's global FLAGS (restored afterwards by flagsaver)."""
    ckpt_flags.define_flags()
    with flagsaver.flagsaver():
        flags.FLAGS(["prog", "--ckpt_format=tf1", "--norestore_legacy"], known_only=True)
        assert ckpt_flags.read_flags() == CheckpointFlags(ckpt_format="tf1", restore_legacy=False)
        assert ckpt_flags.warm_start_from_flags() is None
    assert flags.FLAGS["ckpt_format"].value == "tf2"


# -- what the flags build (real TensorFlow) -----------------------------------------------


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


@pytest.fixture(scope="module")
def legacy_dir(tf, tmp_path_factory) -> str:
    """A name-based checkpoint dir: `old/v` = [1, 2, 3], `old/u` = 7, global_step = 5."""
    v1 = tf.compat.v1
    directory = str(tmp_path_factory.mktemp("flags") / "legacy")
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        v = v1.get_variable("old/v", initializer=[1.0, 2.0, 3.0])
        u = v1.get_variable("old/u", initializer=7.0)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run([step.assign(5), v.read_value(), u.read_value()])
            v1.train.Saver().save(session, os.path.join(directory, "model.ckpt"), global_step=step)
    return directory


@pytest.mark.estimator
def test_warm_start_from_flags_builds_settings(tf, legacy_dir):
    """The flags become est_ckpt's WarmStartSettings: a genuine tf.estimator.WarmStartSettings with the map."""
    fv = parse(
        f"--warm_start_from={legacy_dir}", "--warm_start_vars=new/,other/", "--warm_start_map=old/=new/"
    )
    settings = ckpt_flags.warm_start_from_flags(fv)
    assert isinstance(settings, tf.estimator.WarmStartSettings)
    assert settings.ckpt_to_initialize_from == legacy_dir
    assert settings.vars_to_warm_start == ["new/", "other/"]
    assert settings.assignment_map == {"old/": "new/"}


@pytest.mark.estimator
def test_warm_start_from_flags_warm_starts_an_estimator(tf, legacy_dir, tmp_path):
    """`Estimator(warm_start_from=warm_start_from_flags())` initialises the renamed variable from the checkpoint."""
    v1 = tf.compat.v1
    fv = parse(f"--warm_start_from={legacy_dir}", "--warm_start_map=old/=new/")

    def model_fn(features, labels, mode):
        var = v1.get_variable("new/v", shape=[3], initializer=v1.zeros_initializer())
        step = v1.train.get_or_create_global_step()
        return tf.estimator.EstimatorSpec(
            mode,
            loss=tf.reduce_sum(var) * 0.0,
            train_op=step.assign_add(1),
            predictions={"v": var + 0.0 * features},
        )

    est = tf.estimator.Estimator(
        model_fn, model_dir=str(tmp_path), warm_start_from=ckpt_flags.warm_start_from_flags(fv)
    )
    est.train(lambda: tf.data.Dataset.from_tensors((tf.zeros([3]), tf.zeros([]))), steps=1)
    assert est.get_variable_value("new/v").tolist() == [1.0, 2.0, 3.0]


def _train_one_session(tf, model_dir: str, fv, *, name: str = "new/v", other: bool = True):
    """Runs a MonitoredTrainingSession with the flags' scaffold; returns the variable's value after init."""
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.train.get_or_create_global_step()
        var = v1.get_variable(name, shape=[3], initializer=v1.zeros_initializer())
        if other:
            v1.get_variable("new/u", shape=[], initializer=v1.zeros_initializer(), trainable=False)
        scaffold = ckpt_flags.scaffold_from_flags(flag_values=fv)
        assert isinstance(scaffold, v1.train.Scaffold)
        with v1.train.MonitoredTrainingSession(
            checkpoint_dir=model_dir, scaffold=scaffold, save_summaries_steps=None, log_step_count_steps=None
        ) as session:
            return session.run(var)


@pytest.mark.parametrize(
    "ckpt_format, main_format, tf1_copy",
    [("tf2", "tf2", False), ("both", "tf2", True), ("tf1", "tf1", False)],
)
def test_scaffold_from_flags_saves_the_chosen_format(
    tf, legacy_dir, tmp_path, ckpt_format, main_format, tf1_copy
):
    """--ckpt_format picks the saved format (both adds a name-based copy under tf1/), and the scaffold warm-starts."""
    from est_ckpt.format import checkpoint

    model_dir = str(tmp_path / "model")
    fv = parse(
        f"--ckpt_format={ckpt_format}",
        f"--warm_start_from={legacy_dir}",
        "--warm_start_map=old/v=new/v",
        "--warm_start_vars=new/v",
    )
    value = _train_one_session(tf, model_dir, fv)
    assert value.tolist() == [1.0, 2.0, 3.0]  # warm-started through the renaming map
    info = checkpoint.read_checkpoint(model_dir)
    assert info.format == main_format
    assert os.path.isdir(os.path.join(model_dir, "tf1")) == tf1_copy
    if tf1_copy:
        copy = tf.train.load_checkpoint(os.path.join(model_dir, "tf1"))
        assert copy.get_tensor("new/v").tolist() == [1.0, 2.0, 3.0]
    # Only what --warm_start_vars selects is warm-started.
    assert float(info.read_tensor(info.keys_for_name("new/u")[0])) == 0.0


def test_explicit_warm_start_from_wins(tf, legacy_dir, tmp_path):
    """`scaffold_from_flags(warm_start_from=None)` turns off the flags' warm start (e.g. when Estimator does it)."""
    v1 = tf.compat.v1
    fv = parse(f"--warm_start_from={legacy_dir}", "--warm_start_map=old/=new/")
    with tf.Graph().as_default():
        v1.train.get_or_create_global_step()
        var = v1.get_variable("new/v", shape=[3], initializer=v1.zeros_initializer())
        scaffold = ckpt_flags.scaffold_from_flags(flag_values=fv, warm_start_from=None)
        with v1.train.MonitoredTrainingSession(
            checkpoint_dir=str(tmp_path),
            scaffold=scaffold,
            save_summaries_steps=None,
            log_step_count_steps=None,
        ) as session:
            assert session.run(var).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("restore_legacy", [True, False])
def test_restore_legacy_reaches_the_scaffold(tf, legacy_dir, tmp_path, restore_legacy):
    """--restore_legacy restores a name-based model dir by name; --norestore_legacy refuses it."""
    import shutil

    model_dir = str(tmp_path / "legacy")
    shutil.copytree(legacy_dir, model_dir)
    fv = parse("--restore_legacy" if restore_legacy else "--norestore_legacy")
    if restore_legacy:
        assert _train_one_session(tf, model_dir, fv, name="old/v", other=False).tolist() == [1.0, 2.0, 3.0]
    else:
        with pytest.raises(Exception, match="restore_legacy=False"):
            _train_one_session(tf, model_dir, fv, name="old/v", other=False)


# -- in a launch script ---------------------------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "est_ckpt.examples.train", *args],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, rc, message",
    [
        pytest.param(
            ["--model_dir=/m", "--ckpt_format=tf3"],
            1,
            "flag --ckpt_format=tf3: value should be one of",
            id="enum",
        ),
        pytest.param(
            ["--model_dir=/m", "--warm_start_from=/c", "--warm_start_map=a=b/"],
            1,
            "flag --warm_start_map=['a=b/']: --warm_start_map entry 'a=b/' maps the variable 'a' onto the scope 'b/'",
            id="map",
        ),
        pytest.param(
            ["--train_steps=3"],
            1,
            "flag --model_dir=None: Flag --model_dir must have a value other than None",
            id="required",
        ),
        pytest.param(
            ["--model_dir=/m", "--warm_start_from=/nonexistent/est_ckpt"],
            2,
            "--warm_start_from=/nonexistent/est_ckpt: ",
            id="path",
        ),
    ],
)
def test_launch_script_reports_bad_flags(args, rc, message):
    """The example launch script fails on bad flags before training: parse errors exit 1, file-system ones 2."""
    proc = run_script(*args)
    assert proc.returncode == rc, proc.stderr
    assert message in proc.stderr
    assert not os.path.exists("/m")


def test_saving_flags_reach_the_scaffolds_arguments():
    """--async_save and --save_on_signal parse into `CheckpointFlags.saving`; a signal that cannot be caught is
    a parse error naming the flag."""
    import signal

    from absl import flags as absl_flags

    from est_ckpt.tf import flags as ckpt_flags

    values = absl_flags.FlagValues()
    ckpt_flags.define_flags(values)
    values(["prog", "--async_save", "--save_on_signal=SIGTERM,SIGUSR1"])
    parsed = ckpt_flags.read_flags(values)
    assert (parsed.async_save, parsed.save_on_signal) == (True, ("SIGTERM", "SIGUSR1"))
    assert parsed.saving == {"async_save": True, "save_on_signal": (signal.SIGTERM, signal.SIGUSR1)}
    values = absl_flags.FlagValues()
    ckpt_flags.define_flags(values)
    values(["prog"])
    assert ckpt_flags.read_flags(values).saving == {"async_save": False, "save_on_signal": ()}
    for bad in ("SIGKILL", "TERM"):
        values = absl_flags.FlagValues()
        ckpt_flags.define_flags(values)
        with pytest.raises(absl_flags.IllegalFlagValueError, match="save_on_signal"):
            values(["prog", f"--save_on_signal={bad}"])
