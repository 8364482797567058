"""The job runner: training leaves the web server.

A class presses Train at once, so training runs in worker processes that the app starts (spawned, one torch
thread each, a lower OS priority than the server), queued first come first served with at most one job per
browser session. Nothing here imports Streamlit: ``runner`` keeps the queue and the workers, ``worker`` is the
process loop, ``recipes`` says what each kind of job does (with core/ only). ``dashboard/ui/jobs.py`` follows
a job on a page.
"""
