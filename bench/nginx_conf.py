"""The nginx configuration in front of relaygate nodes: one worker process, round robin,
keep-alive connections to the nodes, streams and request bodies unbuffered, a node that fails
once skipped for 2 s (the request retried on the next one), and the node that answered named
in ``X-Upstream``.

One copy for ``bench/scaleout.py`` (imported as a sibling) and the scale-out tests
(``tests/integration/cluster.py`` loads this file by its path), so the benchmark measures the
front the tests exercise. Standard library only."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NGINX_CONF", "write_conf"]

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream relaygate {{
{servers}
    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 16m;
    location / {{
      proxy_pass http://relaygate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_next_upstream error timeout;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"""


def write_conf(root: Path, ports: list[int], port: int) -> Path:
    """``root/nginx.conf`` for nginx listening on 127.0.0.1:``port`` in front of the nodes on
    ``ports``; nginx runs with ``-p root`` (its pid, error log and temporary files go there)."""
    root.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, servers=servers, port=port))
    return conf
