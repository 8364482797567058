"""Bad input, handled (issue 18), the pages' findings: a damaged shipped checkpoint leaves every page usable and
says which file to restore; pasted points survive a visit to another page; an over-long CSV field keeps the Train
button; the session's model list says when it is full and which model would go; tiny custom betas give a positive
log SNR; the likelihood section stops at its time budget.

Run: python -m pytest tests/dashboard/test_pages_bad_input.py -q
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.checkpoints import load_pretrained
from dashboard.ui import models
from dashboard.ui import score_field as fields
from dashboard.ui import train as live
from dashboard.ui.models import SessionModel
from tests.dashboard.apptest_helpers import APP, ok, plotly_specs

PAGES = ("home.py", "schedules.py", "forward.py", "reverse.py", "score_field.py", "samplers.py", "train.py",
         "mnist.py", "baselines.py")


def page(at: AppTest, name: str, query: dict[str, str] | None = None) -> AppTest:
    """Run the page ``name`` of dashboard/views/ in the AppTest's session; its first run may be this one (no run of
    Home first: see apptest_helpers.app_on)."""
    at.switch_page(f"views/{name}")
    at.query_params.clear()
    at.query_params.update(query or {})
    return ok(at.run())


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


# --- a damaged shipped checkpoint ----------------------------------------------------------------------------------


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """A copy of pretrained/ with four damaged files, which every page now loads from: a flipped byte inside a weight
    (still a readable, finite file: only its SHA-256 tells), a truncated file, and an edited config."""
    d = tmp_path / "pretrained"
    shutil.copytree(checkpoints.PRETRAINED_DIR, d)
    for name in ("ddpm-eight_gaussians", "ddpm-mnist"):
        raw = bytearray((d / f"{name}.safetensors").read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (d / f"{name}.safetensors").write_bytes(bytes(raw))
    (d / "classifier-mnist.safetensors").write_bytes((d / "classifier-mnist.safetensors").read_bytes()[:1000])
    cfg = json.loads((d / "gan-eight_gaussians.json").read_text())
    cfg["model"]["width"] = 64
    (d / "gan-eight_gaussians.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(checkpoints, "PRETRAINED_DIR", d)
    return d


def test_a_damaged_shipped_file_leaves_every_page_usable(damaged):
    at = AppTest.from_file(str(APP), default_timeout=300)
    for name in PAGES:
        page(at, name)
        assert list(at.main), name  # the page drew itself
    # each page that needs a damaged model names the file and how to restore it, and draws the rest
    for name in ("reverse.py", "score_field.py", "samplers.py"):
        page(at, name)
        (err,) = errors(at)
        assert "ddpm-eight_gaussians.safetensors is damaged: its SHA-256" in err and "git checkout --" in err
        assert "python -m core train --data eight_gaussians" in err  # or re-create it, by the recorded command
        assert plotly_specs(at), name  # the page runs on with the first model that loads
        assert "pretrained: eight gaussians" not in at.selectbox(key=f"{name[:-3]}.model").options
    page(at, "mnist.py")
    errs = errors(at)
    assert any("ddpm-mnist.safetensors is damaged" in e for e in errs)
    assert any("classifier-mnist.safetensors is damaged" in e for e in errs)  # truncated: its hash says so first
    assert {s.value for s in at.subheader} >= {"The forward process on a real digit", "Evaluation"}
    assert "Denoising, step by step" not in {s.value for s in at.subheader}
    page(at, "baselines.py")
    errs = errors(at)
    assert any("ddpm-eight_gaussians.safetensors is damaged" in e for e in errs)
    assert any("gan-eight_gaussians.json is damaged" in e for e in errs)
    assert at.dataframe and plotly_specs(at)  # the table and the samples of the models that load
    at.selectbox(key="baselines.data").set_value("mnist").run()
    errs = errors(ok(at))
    assert any("ddpm-mnist.safetensors is damaged" in e for e in errs)
    assert any("classifier-mnist.safetensors is damaged" in e for e in errs) and plotly_specs(at)  # GAN, VAE digits
    page(at, "home.py")  # and the site goes on
    assert not errors(at)


def test_a_restored_file_is_used_again_without_a_restart(damaged):
    at = AppTest.from_file(str(APP), default_timeout=300)
    page(at, "reverse.py")
    assert errors(at)
    shutil.copy(checkpoints.REPO_DIR / "pretrained" / "ddpm-eight_gaussians.safetensors", damaged)
    page(at, "reverse.py")
    assert not errors(at) and "pretrained: eight gaussians" in at.selectbox(key="reverse.model").options


# --- the Train page's points ----------------------------------------------------------------------------------------

POINTS = "x,y\n" + "\n".join(f"{i % 7},{(i * i) % 11}" for i in range(30))


def test_pasted_points_survive_a_visit_to_another_page():
    at = AppTest.from_file(str(APP), default_timeout=120)
    page(at, "train.py", {"data": "points"})
    at.text_area(key="train.paste").input(POINTS).run()
    assert any("30 points from pasted points" in s.value for s in ok(at).success)
    page(at, "home.py")
    page(at, "train.py", {"data": "points"})
    assert at.text_area(key="train.paste").value == POINTS
    assert any("30 points from pasted points" in s.value for s in at.success)


def test_an_uploaded_file_is_kept_for_the_tab():
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["train.upload_kept"] = ("mine.csv", POINTS.encode())
    page(at, "train.py", {"data": "points"})
    assert any("Using **mine.csv**" in c.value for c in at.caption)
    assert any("30 points from uploaded file mine.csv" in s.value for s in at.success)
    at.button(key="train.forget_upload").click().run()
    assert not any("mine.csv" in s.value for s in ok(at).success)


def test_an_overlong_csv_field_is_a_message_and_the_train_button_stays():
    at = AppTest.from_file(str(APP), default_timeout=120)
    page(at, "train.py", {"data": "points"})
    at.text_area(key="train.paste").input("x,y\n" + "1,2\n" * 5 + "1," + "9" * 131_073 + "\n" + "3,4\n" * 6).run()
    (err,) = errors(ok(at))
    assert "line 7 is 131,075 characters long" in err
    assert at.button(key="train.go").disabled  # still there, waiting for usable points
    at.text_area(key="train.paste").input('x,y\n1,"2\n' + "3,4\n" * 12).run()
    assert "line 2 has a stray quote" in errors(ok(at))[0]


# --- the session's model list ----------------------------------------------------------------------------------------


def _session(n: int) -> dict:
    p = load_pretrained("ddpm-two_moons")
    return {f"session:{i:08x}": SessionModel(f"#{i + 1} two moons, cosine T=1000", p, [1.0]) for i in range(n)}


def test_a_full_model_list_says_which_model_the_next_one_replaces():
    assert live.MAX_SESSION_MODELS == 5
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[models.SESSION_KEY] = _session(live.MAX_SESSION_MODELS)
    at.session_state[models.DROPPED_KEY] = ["#0 eight gaussians, cosine T=1000"]
    page(at, "train.py")
    text = " ".join(c.value for c in at.caption)
    assert "keeps the last 5 models you train, and the list is full" in text and "**#1 two moons" in text
    assert any("#0 eight gaussians, cosine T=1000 left the Model lists" in i.value for i in at.info)
    page(at, "home.py")
    page(at, "train.py")
    assert not any("left the Model lists" in i.value for i in at.info)  # said once
    page(at, "reverse.py")
    assert "the next one replaces **#1 two moons" in at.selectbox(key="reverse.model").help


def test_a_list_with_room_says_nothing():
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[models.SESSION_KEY] = _session(2)
    page(at, "train.py")
    assert not any("list is full" in c.value for c in at.caption)


# --- Schedules and Score field ------------------------------------------------------------------------------------


def test_tiny_custom_betas_give_a_large_positive_log_snr():
    at = AppTest.from_file(str(APP), default_timeout=120)
    page(at, "schedules.py", {"custom": "1e-17"})
    metric = next(m for m in at.metric if m.label == "custom: ᾱ_T")
    assert metric.value == "1" and metric.delta == "log₁₀ SNR(T) = 14"  # SNR = (1 - 1e-14) / 1e-14, not 0


def test_the_likelihood_section_stops_at_its_budget(monkeypatch):
    monkeypatch.setattr(fields, "LL_MAP_BUDGET_S", 0.0)
    monkeypatch.setattr(fields, "LL_NUMBERS_BUDGET_S", 0.0)
    at = AppTest.from_file(str(APP), default_timeout=120)
    page(at, "score_field.py", {"lln": "13", "seed": "77", "ll": "true"})  # a grid and seed no other test caches
    warnings = [w.value for w in at.warning]
    assert any("The map stopped at its 0 s budget with 0 of 13 rows done" in w for w in warnings)
    assert sum("not done within its 0 s budget" in w for w in warnings) == 2  # learned and exact rows
    table = at.dataframe[0].value
    assert table["PF-ODE log-likelihood (nats/dim)"].isna().all()


def test_the_likelihood_section_reports_its_time():
    at = AppTest.from_file(str(APP), default_timeout=120)
    page(at, "score_field.py", {"lln": "10", "ll": "true"})
    caption = next(c.value for c in at.caption if "10×10 grid" in c.value)
    seconds = float(caption.split("Computed in ")[1].split(" s")[0])
    assert 0 < seconds < fields.LL_MAP_BUDGET_S + 2  # the budget, and one network call past it at most
    table = at.dataframe[0].value
    assert (table["seconds"] < fields.LL_NUMBERS_BUDGET_S + 2).all()
    finished = np.isfinite(table["PF-ODE log-likelihood (nats/dim)"])
    warned = sum("not done within its" in w.value for w in at.warning)
    assert warned == (~finished).sum()  # an unfinished row is said to be so (a busy machine), never shown as done
    toggle = at.toggle(key="score_field.ll").label
    assert f"at most {fields.LL_MAP_BUDGET_S + 2 * fields.LL_NUMBERS_BUDGET_S:.0f} s" in toggle
