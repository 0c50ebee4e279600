"""The experiment spec: defaults, the example spec, and errors that name file, key and expectation."""
from pathlib import Path

import pytest

from experiments.errors import SpecError
from experiments.study.spec import ExperimentSpec, load_spec, parse_spec

EXAMPLE = Path(__file__).parents[2] / "experiments" / "examples" / "imi_replication.toml"


def test_defaults_follow_imi():
    spec = parse_spec('name = "x"\nstimulus_sets = ["set"]')
    assert (spec.task.params.references_per_side, spec.main_trials_per_task,
            spec.catch_trials_per_task) == (9, 40, 5)
    assert spec.responses_per_unit == 30 and spec.practice.trials == 5 and spec.practice.pass_mark == 5
    assert (spec.timing.button_lock_ms, spec.timing.feedback_delay_ms, spec.timing.feedback_ms) == (1500, 350, 1150)
    assert spec.exclusions.min_catch_correct == 4 and spec.exclusions.max_total_s == 2500
    assert spec.recruitment.resume_policy == "resume"


def test_example_spec_is_valid_and_documented():
    loaded = load_spec(EXAMPLE)
    assert loaded.spec.conditions == ["natural", "synthetic"]
    assert all(p.is_absolute() for p in loaded.set_paths)
    text = EXAMPLE.read_text()
    for key in ("responses_per_unit", "[timing]", "[practice]", "[recruitment]", "[exclusions]",
                "[[instructions]]", "resume_policy", "completion_codes", "[lab]",
                "participant_fields", "reference_deg", "[task]"):
        assert key in text


@pytest.mark.parametrize("body, expected", [
    ('stimulus_sets = ["s"]', "x.toml: name: required key is missing"),
    ('name = "x"\nstimulus_sets = ["s"]\nconditions = ["nat"]',
     "x.toml: conditions: value error, 'nat' is not a condition of task type imi_2afc; use "
     "natural, synthetic, mixed, none (got ['nat'])"),
    ('name = "x"\nstimulus_sets = ["s"]\n[timing]\nbutton_lock = 3',
     "x.toml: timing.button_lock: unknown key"),
    ('name = "x"\nstimulus_sets = ["s"]\nmain_trials_per_task = 0',
     "x.toml: main_trials_per_task: input should be greater than or equal to 1 (got 0)"),
    ('name = "x"\nstimulus_sets = ["s"]\n[practice]\ntrials = 2\nmin_correct = 3',
     "x.toml: practice: value error, min_correct (3) exceeds trials (2)"),
    ('name = "x"\nstimulus_sets = ["s"]\n[recruitment]\nresume_policy = "maybe"',
     "x.toml: recruitment.resume_policy: input should be 'resume', 'restart' or 'block'"),
    ('name = "x"\nstimulus_sets = ["s"]\n[lab]\nquery_deg = 4.0',
     "x.toml: lab: value error, query_deg and gap_deg need reference_deg"),
    ('name = "x"\nstimulus_sets = [', "x.toml: not valid TOML"),
    ('name = "x"\nstimulus_sets = ["s"]\n[task]\ntype = "occlusio"',
     "x.toml: task: value error, type: unknown task type 'occlusio'; registered: categorisation, imi_2afc"),
    ('name = "x"\nstimulus_sets = ["s"]\n[task]\ntype = "imi_2afc"\nrefs = 9',
     "x.toml: task: value error, refs: unknown key"),
])
def test_errors_name_file_key_and_expectation(body, expected):
    with pytest.raises(SpecError) as info:
        parse_spec(body, "x.toml")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.toml")


def test_single_difficulty_string_is_accepted():
    spec = parse_spec('name = "x"\nstimulus_sets = ["s"]\ndifficulty = "p95"')
    assert spec.difficulty == ["p95"]


def test_the_task_table_defaults_to_imis_2afc():
    spec = parse_spec('name = "x"\nstimulus_sets = ["s"]')
    assert spec.task.type == "imi_2afc"
    assert parse_spec('name = "x"\nstimulus_sets = ["s"]\n[task]\ntype = "imi_2afc"') == spec


def test_the_occlusion_example_holds_the_papers_design():
    """Zimmermann, Borowski et al. 2021: 18 main + 3 catch trials per HIT and their criteria."""
    example = EXAMPLE.with_name("occlusion_replication.toml")
    spec = load_spec(example).spec
    assert spec.task.type == "occlusion"
    assert spec.conditions == ["none", "natural", "synthetic", "mixed", "blurred"]
    assert (spec.main_trials_per_task, spec.catch_trials_per_task, spec.practice.trials) == (
        18, 3, 4)
    rules = spec.exclusions
    assert (rules.min_total_s, rules.max_total_s, rules.min_instruction_s,
            rules.max_practice_attempts) == (90, 900, 20, 5)
    assert rules.min_catch_correct / spec.catch_trials_per_task >= 0.6
    text = example.read_text()
    for key in spec.model_dump(exclude_unset=True):
        assert f"\n{key} =" in text or f"[{key}" in text, key


def test_references_per_side_sits_under_task_and_an_older_top_level_key_still_reads():
    """IMI's layout knob is the task type's (`[task]`, as the occlusion task's); a spec written
    before (a TOML file, or a stored spec's JSON) keeps its value; the two places disagreeing
    is an error naming both; a type without the knob ignores the old key."""
    head = 'name = "x"\nstimulus_sets = ["set"]\n'
    assert parse_spec(head + "[task]\nreferences_per_side = 4").task.params.references_per_side == 4
    assert parse_spec("references_per_side = 3\n" + head).task.params.references_per_side == 3
    stored = {"name": "x", "stimulus_sets": ["set"], "references_per_side": 6,
              "task": {"type": "imi_3afc", "params": {}}}
    assert ExperimentSpec.model_validate(stored).task.params.references_per_side == 6
    with pytest.raises(SpecError, match="references_per_side is 3 at the top level but 5 under "
                                        r"\[task\]: give it once"):
        parse_spec("references_per_side = 3\n" + head + "[task]\nreferences_per_side = 5")
    occlusion = parse_spec("references_per_side = 3\n" + head + '[task]\ntype = "occlusion"')
    assert "references_per_side" not in occlusion.task.params.model_dump()


def test_the_categorisation_example_holds_the_benchmarks_design():
    """Geirhos et al.: 1,280 trials per participant, 300/200/200 ms and a 1,500 ms window."""
    example = EXAMPLE.with_name("categorisation_replication.toml")
    spec = load_spec(example).spec
    assert spec.task.type == "categorisation" and spec.conditions == ["contrast"]
    params = spec.task.params
    assert (params.fixation_ms, params.stimulus_ms, params.mask_ms,
            params.response_window_ms) == (300, 200, 200, 1500)
    assert spec.main_trials_per_task == 1280 and spec.responses_per_unit == 4
    assert (spec.timing.main_feedback, spec.timing.auto_continue) == (False, True)
    text = example.read_text()
    for key in spec.model_dump(exclude_unset=True):
        assert f"\n{key} =" in text or f"[{key}" in text, key
