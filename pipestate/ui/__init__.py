"""The dashboard: pages served under /ui by the service, and `pipestate report`'s offline file.

Needs the `ui` extra (plotly, jinja2, itsdangerous, fastapi). Import the submodules you need:
pipestate.ui.router.build_ui_router for the served pages, pipestate.ui.report.build_report for
the static file; nothing here is imported by `pipestate run`.
"""
