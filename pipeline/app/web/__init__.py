"""``amur serve``: the dashboard, the cooperation map, the JSON API and the feeds over HTTP.

A read-only FastAPI application over the records database (SQLite or PostgreSQL), reading
the tables the sinks write (:mod:`pipeline.app.web.queries`). Pages are rendered on the
server from Jinja2 templates with autoescaping; no page runs a script, and the
Content-Security-Policy forbids inline ones, so text that came from the web can only ever
be shown as text.

======================  ==================================================================
module                  what it serves
======================  ==================================================================
``app``                 the application: settings, access token, security headers, metrics
``pages``               the dashboard: stories, a story, the map, the timeline, the sources
``api``                 ``/api/…``: stories, a story, an article, the map's pairs
``feeds``               ``/feeds/<subscription>.atom|.json`` and ``/feeds/filter.atom|.json``
``server``              uvicorn, alone (``amur serve``) or beside the pipeline (``--serve``)
======================  ==================================================================
"""
