"""Operator dashboard (components §8), served by `agents/dashboard_agent.py`.

Modules:
- `app`: assembles the Dash app (layout per page load, callbacks, HTTP routes); nothing else.
- `layout`: layout builders of the five tabs and the switch modals.
- `callbacks`: every callback; periodic ones read one snapshot, action ones submit commands.
- `figures`: figure dicts and `Patch` builders (live 4-row figure, tracking bars, previews, history).
- `views`: the texts, button states and `/api/state` document, pure functions of a snapshot.
- `snapshot`: one locked copy of the `shared_data` references the dashboard reads.
- `http_routes`: basic auth, 413, `/api/state`, `/healthz`, CSV downloads.
- `files`: cached directory listings and the bounded reads of user actions (history day, log tail).
- `context`: what callbacks and routes share (the running app, config, clock, listings).
- `constants`: ids, fixed texts, colours and limits.
"""
