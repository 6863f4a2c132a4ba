import numpy as np
import pytest

from climb_ray.quality import heuristic_checks, heuristic_scores, load_scorer, score

PROSE = ("The river rose through the night and by morning the town was cut off from the roads "
         "that lead to the coast. Farmers moved their animals to the higher fields, and the school "
         "was opened as a shelter for families who had to leave their homes.")
JUNK = "\n".join(["#tag #tag 12345 67890 ... ###"] * 20)


def test_prose_passes_every_check_and_junk_fails_most():
    assert all(heuristic_checks(PROSE))
    scores = heuristic_scores([PROSE, JUNK, "too short"])
    assert scores[0] == 1.0 and scores[1] <= 0.5 and scores[2] < 1.0


def test_a_scorer_can_be_plugged_in_by_import_path():
    scorer = load_scorer("tests.unit.test_quality:length_scorer")
    assert list(score(scorer, ["ab", "abcd"])) == [0.5, 1.0]


def length_scorer(texts):
    return np.array([min(len(t) / 4, 1.0) for t in texts])


@pytest.mark.parametrize("name", ["fasttext", "no.such.module:f", "tests.unit.test_quality:missing"])
def test_bad_scorer_names_are_clear_errors(name):
    with pytest.raises(ValueError, match="cluster.quality_scorer"):
        load_scorer(name)


def test_scores_of_the_wrong_shape_or_nan_are_refused():
    with pytest.raises(ValueError, match="shape"):
        score(lambda texts: np.array([0.5]), ["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        score(lambda texts: np.array([np.nan, 1.0]), ["a", "b"])
