"""Operator dashboard (components §8), served by `agents/dashboard_agent.py`.

Modules:
- `app`: assembles the Dash app (layout per page load, callbacks, HTTP routes); nothing else.
- `layout`: the page (header, tick, stores, modals, tabs) and `register_callbacks`; nothing else.
- `tabs/`: one module per tab (`status`, `manual`, `api`, `history`, `logs`), each with its layout
  builder and `register(app, ctx)` for its callbacks; `tabs/live` decides rebuild/patch of the
  live figures. Periodic callbacks read one snapshot, action ones submit commands.
- `top_card`: the Status tab's top card (toggles, Start All / Stop All, status/API/command lines)
  and its values.
- `switch_modals`: the confirmation modals (source and transport switches, Start All, Stop All)
  and their one confirm flow.
- `modal_texts`: what those modals say, written as one opens from its snapshot and the config.
- `plant_summary`: the Status tab's plant summary table rows and the API-schedule note.
- `common`: small helpers the tabs share (callback binding, clicks, command store, options).
- `figures`: figure dicts and `Patch` builders (live 4-row figure, tracking bars, previews, history).
- `views`: the texts, button states and `/api/state` document, pure functions of a snapshot.
- `snapshot`: one locked copy of the `shared_data` references the dashboard reads.
- `http_routes`: basic auth, 413, `/api/state`, `/healthz`, CSV downloads.
- `files`: cached directory listings and the bounded reads of user actions (history day, log tail).
- `context`: what callbacks and routes share (the running app, config, clock, listings).
- `constants`: ids, fixed texts, colours and limits.
"""
