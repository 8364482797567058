"""The map of the lab: what each page teaches, in one line, and the pages as the router (dashboard/app.py) lists
them, for the pages that link to others (Home's map, the Train page's "use it on another page").

app.py owns the page list: it calls ``declare`` with its sections of ``st.Page`` on every run, so a page added
there appears here too; this module adds only the one-line summaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent / "views"
HOME = "home.py"  # the default page: Streamlit serves it at "/" (its url_path is "")


@dataclass(frozen=True)
class Summary:
    """What a page teaches, in one line (Home shows it beside the page's link)."""

    file: str  # in dashboard/views/
    teaches: str


SUMMARIES: tuple[Summary, ...] = (
    Summary("home.py", "What diffusion is, in one picture."),
    Summary("schedules.py", "How the betas set alpha-bar, the signal-to-noise ratio and the posterior variance, and "
                            "why a schedule that never reaches noise leaves structure behind at t = T."),
    Summary("forward.py", "A 2D data set dissolving into Gaussian noise, with the exact density q(x_t) and a few "
                          "particle paths."),
    Summary("reverse.py", "A trained network turning noise back into data, step by step, beside its x_0 "
                          "predictions."),
    Summary("score_field.py", "The learned score next to the exact one, at any noise level."),
    Summary("samplers.py", "DDPM, DDIM, SDE and ODE samplers from the same noise on the same model."),
    Summary("flow.py", "Flow matching's straight training paths, the curved flow it learns, and how reflow "
                       "straightens it, beside diffusion."),
    Summary("improved_ddpm.py", "Learned reverse variances (Improved DDPM): where the variance matters, a tighter "
                                "likelihood bound, and good samples in few steps."),
    Summary("guidance.py", "Classifier guidance beside classifier-free guidance, exact on labelled 2D toys: what the "
                           "scale buys in purity and costs in distance to p(x | y)."),
    Summary("train.py", "Train a small model live, with a loss curve, a time budget and a cancel button."),
    Summary("mnist.py", "The same ideas on handwritten digits, with class guidance."),
    Summary("edit_digit.py", "Draw a digit and let the model edit it (SDEdit) or fill in a masked part (RePaint): "
                             "how far to noise the input trades faithfulness for realism."),
    Summary("latent.py", "Latent diffusion: compress digits to a small latent, diffuse there, decode; what it saves, "
                         "and a latent model trained live."),
    Summary("text_to_image.py", "A miniature Stable Diffusion: type a prompt, see where each word's cross-attention "
                                "looks, and what guidance on the caption does to thickness, slant and size."),
    Summary("baselines.py", "Three families of generative models on the same data with the same metrics."),
)
_TEACHES = {s.file: s.teaches for s in SUMMARIES}


@dataclass(frozen=True)
class PageSpec:
    """A page as app.py lists it: its file in dashboard/views/, title, material icon, sidebar section, and what
    it teaches."""

    file: str
    title: str
    icon: str
    section: str
    teaches: str

    @property
    def path(self) -> str:
        """The page's script relative to app.py, as st.page_link takes it."""
        return f"{PAGES_DIR.name}/{self.file}"


_declared: tuple[PageSpec, ...] = ()  # the same for every session: app.py lists the same pages on every run


def declare(sections: Mapping[str, Sequence[st.Page]]) -> Mapping[str, Sequence[st.Page]]:
    """Record the pages app.py passes to st.navigation (section -> pages) and return them unchanged.

    A page's URL path is its file name (app.py sets no url_path), so the file is found from it; a page without a
    summary in SUMMARIES raises KeyError."""
    global _declared
    specs = []
    for section, pages in sections.items():
        for page in pages:
            file = f"{page.url_path}.py" if page.url_path else HOME
            specs.append(PageSpec(file, page.title, page.icon, section, _TEACHES[file]))
    _declared = tuple(specs)
    return sections


def existing_pages() -> list[PageSpec]:
    """The pages app.py lists, in its order (empty before app.py has run in this process)."""
    return list(_declared)
