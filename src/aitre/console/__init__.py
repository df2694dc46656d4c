"""The web console: operator and user pages served by the gateway itself (see docs/console.md).

Server-rendered Jinja2 pages, with htmx and uPlot as static files of the package. The pages call
the admin and user APIs' own route functions with the signed-in visitor's rights (`principal`),
so the console can do nothing the API would not let the same visitor do; the playground calls the
public API from the browser with the visitor's key.
"""
