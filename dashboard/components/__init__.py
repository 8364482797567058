"""Helpers shared by the dashboard pages: ``common`` (page layout, URL-backed widgets, cached loaders,
the page registry) and ``plots`` (equal-axis 2D scatters, animated forward/reverse views, Altair curves).

A page reads like this (see ``dashboard/forward.py``)::

    from dashboard.components.common import UrlWidgets, page_header, toy_points, build_schedule
    from dashboard.components import plots

    page_header("Title", r"latex", "Two or three sentences.", "Try this: ...", code=[engine_fn])
    ui = UrlWidgets("mypage")                      # widget values live in the URL (?T=50&seed=3)
    T = ui.slider("T", "T", 10, 1000, default=1000, step=10)
    fig = plots.scatter_panels([("x_0", toy_points("eight_gaussians", 1000, 0))])
    plots.show(fig)
"""
