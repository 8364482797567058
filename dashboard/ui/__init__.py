"""What the dashboard pages share, one concept per module, and the helpers of single pages, named after them.

Shared by several pages:
    header.py        page_header (title, equation, explanation, "try this", "show the code"), show_code
    widgets.py       UrlWidgets: widgets whose value lives in the URL (?T=50&seed=3); parse_finite
    loaders.py       cached loaders: toy points, Gaussian noise, schedules, pretrained checkpoints, JSON results
    fmt.py           fmt_num, toy_label
    terminal_snr.py  the "does this schedule reach noise?" warning
    plots.py         equal-axis 2D panels, animations, Altair line charts, digit mosaics
    exports.py       downloads of what a page shows: points as CSV, digit grids as PNG, animations as GIF
    models.py        the model picker and the registry of models trained in this session
    background.py    a page's jobs in the job runner (dashboard/jobs): start, follow (queue, progress, stop), collect
    warmup.py        once per server (at its first visit): one torch thread for page work, every page's default
                     view computed
    sampling.py      cached sampler runs and their figures (Reverse process and Samplers pages)
    sitemap.py       what each page teaches; the pages as app.py lists them (Home's map, Train's links)
The helpers of one page: score_field.py, train.py and drawing.py (Train: the canvas that turns strokes into points),
baselines.py, flow.py (Flow matching; its flow lines also join the Samplers page's quality chart), improved_ddpm.py
(Improved DDPM), guidance.py (Guidance), edit_digit.py (Edit a digit), latent.py (Latent diffusion), text_to_image.py
(Text to image).

A page reads like this (see ``dashboard/views/forward.py``)::

    from dashboard.ui import plots
    from dashboard.ui.header import page_header
    from dashboard.ui.loaders import toy_points
    from dashboard.ui.widgets import UrlWidgets

    page_header("Title", r"latex", "Two or three sentences.", "Try this: ...", code=[engine_fn])
    ui = UrlWidgets("mypage")                      # widget values live in the URL (?T=50&seed=3)
    T = ui.slider("T", "T", 10, 1000, default=1000, step=10)
    fig = plots.scatter_panels([plots.Panel("x_0", toy_points("eight_gaussians", 1000, 0))])
    plots.show(fig)
"""
