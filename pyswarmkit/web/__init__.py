"""The read-only web view ``swarmd --listen-web`` serves: the pure part that
turns the store into the page's JSON (view.py), the HTTP server (server.py)
and the page itself (static/: plain HTML, CSS and a little JavaScript)."""
