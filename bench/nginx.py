"""nginx configurations: the fake upstream, and the `proxy_pass` target.

Both run as their own nginx master (daemon off) with one worker, so the harness can pin each to
its own core with `taskset` and stop it by process group, without touching a system nginx.

The upstream must answer a stream request with SSE and any other request with JSON, on the same
path (gateways call `<base>/chat/completions` for both). Only the request body says which, and
plain nginx cannot branch on the body (`if`/`map` run before it is read); nor can it `return` a
5 KB body (config tokens are limited to 4 KB) or serve a static file to a POST (405). So a few
lines of njs read the body and return one of the two canned bodies, held as string constants in
the script. That costs microseconds per request, far below anything measured here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench import canned

JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")

_ROUTER_JS = """\
// Route by body: an OpenAI stream request says "stream": true.
var COMPLETION = %s;
var STREAM = %s;
function route(r) {
    var stream = /"stream"\\s*:\\s*true/.test(r.requestText || '');
    r.headersOut['Content-Type'] = stream ? 'text/event-stream' : 'application/json';
    if (stream) {
        r.headersOut['Cache-Control'] = 'no-cache';
    }
    r.return(200, stream ? STREAM : COMPLETION);
}
export default {route};
"""


def _router_js() -> str:
    # JSON string literals are valid JavaScript string literals.
    return _ROUTER_JS % (json.dumps(canned.completion()), json.dumps(canned.stream()))


def _main_block(prefix: Path, extra: str = "") -> str:
    # `user` only matters (and is only allowed without a warning) when started as root; root
    # keeps the temp dirs under `prefix` readable by the worker.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{extra}{user}worker_processes 1;\n"
        "daemon off;\n"
        "master_process on;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 4096; multi_accept on; }\n"
    )


def _http_common(prefix: Path) -> str:
    # Keep-alive without a request cap: wrk and the gateways hold their connections for a whole
    # cell, and nginx's default of 1000 requests per connection would add reconnects to the
    # numbers.
    return (
        "    access_log off;\n"
        "    keepalive_timeout 120s;\n"
        "    keepalive_requests 100000000;\n"
        "    client_body_buffer_size 64k;\n"
        "    client_body_in_single_buffer on;\n"
        f"    client_body_temp_path {prefix}/client_body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
    )


def write_upstream(prefix: Path, port: int) -> Path:
    """The fake OpenAI upstream on 127.0.0.1:`port`. Returns the config path."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "router.js").write_text(_router_js())
    conf = (
        _main_block(prefix, extra=f"load_module {JS_MODULE};\n")
        + "http {\n"
        + _http_common(prefix)
        + f"    js_import router from {prefix}/router.js;\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port} backlog=4096;\n"
        + "        location = /v1/chat/completions { js_content router.route; }\n"
        + '        location = /health { default_type text/plain; return 200 "ok"; }\n'
        + "    }\n"
        + "}\n"
    )
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def write_proxy(prefix: Path, port: int, upstream_port: int) -> Path:
    """nginx `proxy_pass` to the upstream: pooled keep-alive connections, no buffering (so SSE
    is forwarded as it arrives, as a gateway must). Returns the config path."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = (
        _main_block(prefix)
        + "http {\n"
        + _http_common(prefix)
        + f"    upstream fake_openai {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port} backlog=4096;\n"
        + "        location / {\n"
        + "            proxy_pass http://fake_openai;\n"
        + "            proxy_http_version 1.1;\n"
        + '            proxy_set_header Connection "";\n'
        + "            proxy_buffering off;\n"
        + "        }\n"
        + "    }\n"
        + "}\n"
    )
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def command(conf: Path, prefix: Path) -> list[str]:
    return ["nginx", "-p", str(prefix), "-c", str(conf)]
