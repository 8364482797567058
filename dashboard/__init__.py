"""Diffusion Lab's Streamlit app: ``streamlit run dashboard/app.py``.

- ``app.py``: the router. It lists every page under its sidebar section (st.navigation) and runs the one asked for.
- ``views/<topic>.py``: one script per page (home, schedules, forward, reverse, score_field, samplers, flow,
  improved_ddpm, guidance, train, mnist, latent, text_to_image, edit_digit, baselines). A page reads its widgets,
  calls the engine in ``core/`` and plots; its file name is its URL.
  (Not ``pages/``: a folder of that name beside app.py makes Streamlit fall back to its legacy page discovery
  when a server's first visit is a deep link.)
- ``ui/``: what the pages share (header, URL-backed widgets, cached loaders, plots, the model picker, background
  jobs), and one helper module per page that needs more than its own script, named after the page.
- ``jobs/``: the job runner: training in worker processes, queued (no Streamlit inside).

The browser harness that drives the app in Chromium lives with its test in tests/browser/.
"""
