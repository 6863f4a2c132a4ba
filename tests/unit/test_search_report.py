"""The search's pictures: the predictor's held-out fit after each iteration among them."""

import matplotlib.image

from climb_ray.search_report import fit_png, report_pngs
from tests.unit.test_search import make, run


def test_a_finished_search_draws_its_predictor_fit_by_iteration(tmp_path):
    search = make()
    run(search)
    answer = search.answer()
    assert [f["through"] for f in search.fits][:2] == [0, 1]  # the fits that proposed iterations 1 and 2
    assert search.fits[-1]["through"] == 2  # the answer's fit, on every result
    pngs = report_pngs(search, answer)
    assert set(pngs) == {"score_by_iteration.png", "predictor_fit_by_iteration.png", "predicted_vs_measured.png",
                         "final_weights.png"}
    path = tmp_path / "fit.png"
    path.write_bytes(pngs["predictor_fit_by_iteration.png"])
    assert matplotlib.image.imread(path).shape[:2] == (400, 600)  # 6 x 4 inches at 100 dpi


def test_the_fit_chart_draws_iterations_without_a_held_out_figure_and_degenerate_fits():
    fits = [{"iteration": 1, "through": 0, "spearman": float("nan"), "mae": None, "degenerate": "constant predictions"},
            {"iteration": 2, "through": 1, "spearman": 0.4, "mae": 0.02, "degenerate": ""},
            {"iteration": 2, "spearman": 0.8, "mae": 0.01, "degenerate": ""}]
    assert fit_png(fits)[:4] == b"\x89PNG"
