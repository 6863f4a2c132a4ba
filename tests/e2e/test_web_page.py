"""The web page (climb_ray/web) in a real headless Chromium, against the predictor of the `served`
fixture on Ray Serve (4 clusters; score = -L1(w, (0.1, 0.6, 0.2, 0.1))), driven as a user would:
keyboard on the sliders, clicks on the buttons, typing the token."""

import re
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, SERVED_NAMES

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install playwright)")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
ANSWER = {"sc00": 0.1, "sc01": 0.6, "sc02": 0.2, "sc03": 0.1}  # best_mixture.json of the synthetic run
NUMBER = re.compile(r"^-?\d+\.\d+$")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    crashes = []
    page.on("pageerror", lambda err: crashes.append(str(err)))
    yield page
    context.close()
    assert not crashes, f"uncaught errors in the page's JS: {crashes}"


def open_page(page, url: str) -> None:
    """Open the page and wait for the sliders and a first predicted score."""
    page.goto(url)
    expect(page.locator("#sliders input[type=range]")).to_have_count(len(SERVED_NAMES))
    expect(page.locator("#score")).to_have_text(NUMBER)


def slider_weights(page) -> dict[str, float]:
    """The normalised weights the sliders stand for."""
    raw = {n: float(page.locator(f"#w-{n}").input_value()) for n in SERVED_NAMES}
    total = sum(raw.values())
    return {n: v / total for n, v in raw.items()}


def chart_weights(page) -> dict[str, float]:
    bars = page.locator("#chart svg rect.bar")
    expect(bars).to_have_count(len(SERVED_NAMES))
    return {bars.nth(i).get_attribute("data-cluster"): float(bars.nth(i).get_attribute("data-weight"))
            for i in range(bars.count())}


def predicted(url: str, weights: dict) -> float:
    return requests.post(f"{url}/v1/predict", json={"weights": weights, "normalize": True}, timeout=10).json()["predicted"]


def test_page_opens_at_the_search_answer_with_its_score_model_and_chart(page, served):
    url, _ = served
    open_page(page, url)
    model = requests.get(f"{url}/v1/model", timeout=10).json()
    expect(page.locator("#model")).to_contain_text(model["version"])
    expect(page.locator("#model")).to_contain_text(f"{model['trials']} trials")
    expect(page.locator("#model")).to_contain_text("Spearman")
    for name, share in ANSWER.items():
        slider = page.locator(f"#w-{name}")
        assert slider.get_attribute("data-cluster") == name
        assert float(slider.input_value()) == pytest.approx(100 * share)
        expect(page.locator(f"#pct-{name}")).to_have_text(f"{100 * share:.1f}%")
    expect(page.locator("label[for=w-sc01]")).to_contain_text("thou · unto · lord")
    assert chart_weights(page) == pytest.approx(ANSWER)
    expect(page.locator("#chart svg text.label")).to_have_text(SERVED_NAMES)
    assert float(page.locator("#score").inner_text()) == pytest.approx(predicted(url, ANSWER), abs=1e-4)
    expect(page.locator("#score-meta")).to_contain_text("higher is better")
    expect(page.locator("#score-meta")).to_contain_text("±")
    expect(page.locator("#status")).to_have_text("")


def test_the_cluster_map_shows_each_super_cluster_and_a_click_shows_its_examples(page, served):
    url, _ = served
    open_page(page, url)
    bubbles = page.locator("#map svg circle.bubble")
    expect(bubbles).to_have_count(len(SERVED_NAMES))
    xs = [float(bubbles.nth(i).get_attribute("cx")) for i in range(len(SERVED_NAMES))]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # placed by map_xy (x = -0.75, -0.25, 0.25, 0.75)
    radii = [float(bubbles.nth(i).get_attribute("r")) for i in range(len(SERVED_NAMES))]
    assert radii == sorted(radii, reverse=True)  # area by token share: 40%, 30%, 20%, 10%
    expect(page.locator("#cluster-detail")).to_contain_text("an example of python")  # the first is shown at start
    page.locator("#map circle[data-cluster=sc01]").click()
    expect(page.locator("#cluster-detail")).to_contain_text("an example of thou")
    expect(page.locator("#cluster-detail")).to_contain_text("30.0% of the tokens")
    expect(page.locator("#map circle.chosen")).to_have_attribute("data-cluster", "sc01")
    page.locator("#map circle[data-cluster=sc03]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#cluster-detail")).to_contain_text("an example of says")


def test_without_a_search_answer_the_sliders_start_at_the_token_shares(page, served):
    url, _ = served

    def no_answer(route):
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "answer": None})

    page.route("**/v1/best?*", no_answer)
    open_page(page, url)
    shares = {"sc00": 0.4, "sc01": 0.3, "sc02": 0.2, "sc03": 0.1}  # tokens 400k, 300k, 200k, 100k
    assert slider_weights(page) == pytest.approx(shares)
    assert chart_weights(page) == pytest.approx(shares)
    expect(page.locator("#best tbody[data-kind=answer]")).to_have_count(0)
    assert float(page.locator("#score").inner_text()) == pytest.approx(predicted(url, shares), abs=1e-4)


def test_moving_a_slider_updates_the_predicted_score_and_the_chart(page, served):
    url, _ = served
    open_page(page, url)
    at_answer = page.locator("#score").inner_text()

    page.locator("#w-sc01").focus()
    page.keyboard.press("Home")  # sc01 to 0: far from the optimum (sc01 = 0.6)
    expect(page.locator("#score")).not_to_have_text(at_answer)
    expect(page.locator("#score")).to_have_text(NUMBER)
    low = page.locator("#score").inner_text()
    assert float(low) < float(at_answer) - 0.3
    expect(page.locator("#pct-sc01")).to_have_text("0.0%")
    expect(page.locator("#pct-sc02")).to_have_text("50.0%")
    assert chart_weights(page) == pytest.approx({"sc00": 0.25, "sc01": 0.0, "sc02": 0.5, "sc03": 0.25})

    page.keyboard.press("End")  # sc01 to its max: back towards the optimum
    expect(page.locator("#score")).not_to_have_text(low)
    expect(page.locator("#score")).to_have_text(NUMBER)
    high = page.locator("#score").inner_text()
    assert float(high) > float(low) + 0.3
    assert float(page.locator("#w-sc01").input_value()) == 100
    shown = slider_weights(page)
    assert shown == pytest.approx({"sc00": 10 / 140, "sc01": 100 / 140, "sc02": 20 / 140, "sc03": 10 / 140})
    assert chart_weights(page) == pytest.approx(shown, abs=1e-6)
    expect(page.locator("#chart svg text.value[data-cluster=sc01]")).to_have_text(f"{100 * 100 / 140:.1f}%")
    assert float(high) == pytest.approx(predicted(url, shown), abs=1e-4)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)


def test_use_button_sets_the_sliders_to_that_best_mixture(page, served):
    url, _ = served
    open_page(page, url)
    best = requests.get(f"{url}/v1/best?k=5", timeout=10).json()
    at_answer = page.locator("#score").inner_text()
    page.locator("#w-sc01").focus()
    page.keyboard.press("Home")  # away from the best mixtures first, and wait for that score
    expect(page.locator("#pct-sc01")).to_have_text("0.0%")
    expect(page.locator("#score")).not_to_have_text(at_answer)

    for kind, row in (("measured", best["measured"][1]), ("predicted", best["predicted"][0])):
        before = page.locator("#score").inner_text()
        page.locator(f"#best tr[data-kind={kind}][data-index='{0 if kind == 'predicted' else 1}'] button").click()
        want = {n: row["weights"][n] / sum(row["weights"].values()) for n in SERVED_NAMES}
        assert slider_weights(page) == pytest.approx(want, abs=1e-6)
        assert chart_weights(page) == pytest.approx(want, abs=1e-6)
        expect(page.locator("#pct-sc01")).to_have_text(f"{100 * want['sc01']:.1f}%")
        text = f"{row['predicted']:.4f}"
        if text != before:
            expect(page.locator("#score")).to_have_text(text)
        assert float(page.locator("#score").inner_text()) == pytest.approx(row["predicted"], abs=1e-4)
    assert best["measured"][1]["score"] is not None
    expect(page.locator("#best tr[data-kind=measured][data-index='1'] td.num").first).to_have_text(
        f"{best['measured'][1]['score']:.4f}")


def test_an_api_error_shows_its_detail_in_the_status_line(page, served):
    url, _ = served
    open_page(page, url)
    page.route("**/v1/predict", lambda route: route.fulfill(
        status=400, json={"detail": "weights: something the server refused"}))
    page.locator("#w-sc00").focus()
    page.keyboard.press("End")
    expect(page.locator("#status")).to_have_text("400: weights: something the server refused")
    expect(page.locator("#status")).to_have_class(re.compile(r"\berror\b"))

    page.unroute("**/v1/predict")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#status")).to_have_text("")
    for name in SERVED_NAMES:  # every slider at 0: said on the page, not sent
        page.locator(f"#w-{name}").focus()
        page.keyboard.press("Home")
    expect(page.locator("#status")).to_contain_text("every weight is 0")
    expect(page.locator("#score")).to_have_text("—")


def test_a_401_asks_for_the_token_and_the_typed_token_is_sent(page, served):
    """The fixture server has no token, so a route in front of it plays one that wants `s3cret`."""
    url, _ = served
    seen = []

    def guard(route):
        seen.append(route.request.headers.get("authorization"))
        if route.request.headers.get("authorization") == "Bearer s3cret":
            route.continue_()
        else:
            route.fulfill(status=401, json={"detail": "missing or wrong bearer token"},
                          headers={"WWW-Authenticate": "Bearer"})

    page.route("**/v1/**", guard)
    page.goto(url)
    expect(page.locator("#status")).to_contain_text("401: missing or wrong bearer token")
    expect(page.locator("#token")).to_be_visible()
    expect(page.locator("#token")).to_be_focused()

    page.keyboard.type("s3cret")
    page.keyboard.press("Enter")
    expect(page.locator("#sliders input[type=range]")).to_have_count(len(SERVED_NAMES))
    expect(page.locator("#score")).to_have_text(NUMBER)
    expect(page.locator("#status")).to_have_text("")
    assert seen[-1] == "Bearer s3cret"
    assert page.evaluate("sessionStorage.getItem('climb-ray-token')") == "s3cret"

    page.reload()  # the token is kept for the session
    expect(page.locator("#score")).to_have_text(NUMBER)
    expect(page.locator("#token")).to_have_value("s3cret")


def test_the_api_docs_page_renders_every_operation_with_no_outside_network(page, served):
    """/docs draws Swagger UI from files the app serves itself: this machine has no internet."""
    url, _ = served
    outside = []
    page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
    page.goto(f"{url}/docs")
    operations = page.locator(".swagger-ui .opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 6  # predict, optimize, best, clusters, model, healthz
    expect(page.locator(".swagger-ui")).to_contain_text("/v1/predict")
    assert outside == []
