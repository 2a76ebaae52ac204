"""How `est-ckpt` reads its command line: flags anywhere, each command's own flags only, bad values exit 2."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import pytest

import est_ckpt
from est_ckpt.commands import main as cli


def est_ckpt_cli(*args: str) -> subprocess.CompletedProcess:
    """Runs the CLI in a subprocess, as the console script does."""
    return subprocess.run(
        [sys.executable, "-m", "est_ckpt", *args], capture_output=True, text=True, timeout=120
    )


def assert_usage_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, nothing on stdout, one `est-ckpt: error:` line on stderr holding every needle; returns it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("est-ckpt: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--atol", "4", "diff", "A", "B"],
        ["--atol=4", "diff", "A", "B"],
        ["diff", "A", "B", "--atol=4"],
        ["diff", "A", "--atol", "4", "B"],
        ["diff", "--atol", "4", "A", "B"],
    ],
    ids=["before-space", "before-equals", "after", "between", "first"],
)
def test_flags_may_come_before_or_after_the_command(ckpts, args):
    """`est-ckpt --atol 4 diff A B` and `est-ckpt diff A B --atol=4` (and any order between) mean the same."""
    # tf1 holds 1, 2, 3 and tf2 5, 6, 7: equal within 4, different without it.
    paths = {"A": ckpts.prefix("tf1"), "B": ckpts.prefix("tf2")}
    proc = est_ckpt_cli(*(paths.get(a, a) for a in args))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "equal"
    assert est_ckpt_cli("diff", paths["A"], paths["B"]).returncode == 1


def test_json_before_the_command(ckpts):
    """`--json` before the command is the command's flag."""
    out = json.loads(est_ckpt_cli("--json", "inspect", ckpts("tf1")).stdout)
    assert out["format"] == "tf1"


@pytest.mark.parametrize(
    "args, flag",
    [
        (["inspect", "X", "--atol", "0.5"], "--atol"),
        (["--atol=0.5", "inspect", "X"], "--atol"),
        (["verify", "X", "--values"], "--values"),
        (["demo", "--json"], "--json"),
        (["diff", "A", "B", "--target=T"], "--target"),
        (["convert", "A", "B", "--to=tf2", "--workdir=W"], "--workdir"),
        (["map", "S", "--tar", "T"], "--tar"),
    ],
)
def test_flags_do_not_leak_between_commands(args, flag):
    """A flag of another command (or an abbreviation) is a usage error naming it and the command."""
    name = next(a for a in args if a in cli.COMMANDS)
    assert_usage_error(est_ckpt_cli(*args), flag, f"not a flag of 'est-ckpt {name}'")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["map", "S", "--target=T", "--rename_rule=(=x"], ["--rename_rule", "'(=x'", "regular expression"]),
        (["map", "S", "--target=T", "--rename_rule=nodelimiter"], ["--rename_rule", "REGEX=REPLACEMENT"]),
        (["map", "S", "--target=T", "--assignment_map=nodelimiter"], ["--assignment_map", "SRC=DST"]),
        (["map", "S", "--target=T", "--vars_to_warm_start=dense/["], ["--vars_to_warm_start", "regular"]),
        (["map", "S", "--target="], ["--target"]),
        (["diff", "A", "B", "--atol=-1"], ["--atol", ">= 0", "'-1'"]),
        (["diff", "A", "B", "--atol=nan"], ["--atol", ">= 0"]),
        (["diff", "A", "B", "--atol=lots"], ["--atol", "'lots'"]),
        (["convert", "A", "B", "--to=tf3"], ["--to", "tf1, tf2", "'tf3'"]),
        (["convert", "A", "B", "--to=tf2", "--names=id"], ["--names", "full_name, path", "'id'"]),
        (["demo", "--workdir="], ["--workdir"]),
        (["inspect", "X", "--json=maybe"], ["--json", "true or false", "'maybe'"]),
        (["verify", "X", "--json=maybe"], ["--json", "true or false", "'maybe'"]),
        (["inspect", "X", "--values=2"], ["--values", "true or false"]),
        (["convert", "A", "B", "--to=tf2", "--force=yes please"], ["--force", "true or false"]),
        (["inspect", "X", "-json=maybe"], ["--json", "true or false", "'maybe'"]),
        (["inspect", "X", "--verbosity=loud"], ["--verbosity", "'loud'"]),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(args, needles):
    """Every command checks its flags' values while parsing: exit 2, one line naming the flag, no Python tuple."""
    line = assert_usage_error(est_ckpt_cli(*args), *needles)
    assert not re.search(r"\('[^']*', '", line), line  # no tuple such as ('true', 'false')
    assert f"(usage: est-ckpt {args[0]} " in line


def test_boolean_flags_take_absl_spellings(ckpts):
    """`--json`, `-json`, `--json=true`, `--json=1` turn a boolean on; `--nojson` and `--json=false` leave it off."""
    prefix = ckpts("tf1")
    for on in ("--json", "-json", "--json=true", "--json=True", "--json=1"):
        assert json.loads(est_ckpt_cli("inspect", prefix, on).stdout)["format"] == "tf1"
    for off in ("--nojson", "--json=false", "--json=0"):
        proc = est_ckpt_cli("inspect", prefix, "--json", off)  # the last one wins, as in absl
        assert proc.returncode == 0 and proc.stdout.startswith(prefix), proc.stderr


def test_single_dash_long_flags_as_in_absl(ckpts):
    """absl also reads `-flag` as `--flag`: `-atol 4` and `-values` mean `--atol 4` and `--values`."""
    assert est_ckpt_cli("diff", ckpts.prefix("tf1"), ckpts.prefix("tf2"), "-atol", "4").returncode == 0
    proc = est_ckpt_cli("inspect", ckpts("tf1"), "-values")
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("scoped/c  = 3"), proc.stderr


def test_version():
    """`est-ckpt --version` prints `est-ckpt <est_ckpt.__version__>`, also after a command."""
    for args in (["--version"], ["inspect", "--version"]):
        proc = est_ckpt_cli(*args)
        assert proc.returncode == 0 and proc.stdout == f"est-ckpt {est_ckpt.__version__}\n", proc.stderr
    assert est_ckpt.__version__ == "0.1.0"


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help_listing_only_its_flags(name):
    """`COMMAND --help`, `--help COMMAND` and `COMMAND -?` print its usage and its own flags only, exit 0."""
    module = importlib.import_module(cli.COMMANDS[name])
    expected = cli.parser_for(name, module).format_help()
    assert expected.startswith(f"usage: est-ckpt {module.USAGE}\n\n{cli.SUMMARIES[name]}\n")
    for args in ([name, "--help"], ["--help", name], [name, "-?"], [name, "-h"]):
        proc = est_ckpt_cli(*args)
        assert proc.returncode == 0 and proc.stdout == expected, (args, proc.stderr)
    flags = [line.split(":")[0].strip() for line in expected.splitlines() if line.startswith("  --")]
    own = {"inspect": 3, "convert": 11, "diff": 2, "map": 13, "verify": 1, "demo": 1, "export": 5}
    # Every command reads paths, so every command takes --remote_timeout (issue 20.5).
    assert len(flags) == own[name] + 1 and "--remote_timeout" in flags, flags
    assert "--verbosity" not in expected and "--version" not in expected


def test_positionals_may_follow_flags(ckpts):
    """`map --target T SOURCE` reads SOURCE as the positional argument."""
    proc = est_ckpt_cli("map", "--target", ckpts("partitioned"), ckpts("partitioned_tf2"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["unmapped"] == []


def test_absl_flags_still_work(tmp_path, ckpts):
    """absl's own flags (`--flagfile`, `--verbosity`) are accepted with every command, as before."""
    flagfile = tmp_path / "inspect.flags"
    flagfile.write_text("# a comment\n--json\n")
    proc = est_ckpt_cli("inspect", ckpts("tf1"), f"--flagfile={flagfile}", "--verbosity=0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["format"] == "tf1"
