"""A web page and a JSON/PNG API to generate images of a chosen class from an exported generator.

    python sample.py --serve                                  # http://127.0.0.1:8000/, runs/demo
    python sample.py --serve --port=8080 --model=runs/p100/generator.keras

    server = serve.make_server(generator, info, port=0)       # in-process, e.g. for tests
    threading.Thread(target=server.serve_forever, daemon=True).start(); ...; server.shutdown(); server.server_close()

The generator is loaded once; requests are served by threads, and generator calls are serialised
by a lock (a Keras model is not guaranteed to be thread-safe). Image i of a request comes from seed
`seed + i` alone, as in `sample.py`, so a seed gives the same picture on the page and in files.

API (GET only; every other method is answered 405):

    /                     the page (cgan/web/index.html)
    /api/info             JSON: class_names, latent_dim, resolution, step, model, privacy, limits
    /api/grid.png         PNG grid of images seed … seed+num-1, most square layout, 2-pixel gaps
    /api/image.png        PNG of the single image of `seed`
    /api/images.zip       ZIP of one PNG per seed and the grid, named as sample.py names its files

Parameters: label (required: an index "3" or a class name "melanoma"), seed (default 0, an integer
0 … SEED_MAX), num (grid and zip only; default 16, 1 … NUM_MAX, and seed + num - 1 ≤ SEED_MAX),
truncation (optional; TRUNCATION_MIN … TRUNCATION_MAX, absent, empty or "none" for plain N(0, 1)).
A bad request (missing, repeated, unknown or malformed parameter, value out of range, unknown path, other
method) gets a 4xx and `{"error": "<what is wrong and how to fix it>"}`; only a bug answers 500, alike.
"""

import http.server
import io
import json
import math
import os
import re
import sys
import threading
import traceback
import urllib.parse
import zipfile

from cgan.core import images
from cgan.core.options import SEED_MAX

from cgan.model import model_files, sampling
from cgan.core.errors import UserError

NUM_MAX = 64               # images per request: bounds the memory and time one request can take
DEFAULT_NUM = 16
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "index.html")

_INTEGER = re.compile(r"[0-9]+")
_ENDPOINTS = {  # path -> parameters it accepts
    "/api/info": (),
    "/api/grid.png": ("label", "seed", "num", "truncation"),
    "/api/image.png": ("label", "seed", "truncation"),
    "/api/images.zip": ("label", "seed", "num", "truncation"),
}


class BadRequest(Exception):
    """A request the client can fix; answered with `status` and the message as JSON."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class Sampler:
    """The loaded generator, its metadata, and the lock that serialises generator calls."""

    def __init__(self, generator, info, model_name="generator.keras"):
        self.generator = generator
        self.info = info
        self.model_name = model_name
        self._lock = threading.Lock()

    def describe(self):
        """The /api/info document."""
        return {
            "model": self.model_name,
            "class_names": list(self.info["class_names"]),
            "latent_dim": self.info["latent_dim"],
            "resolution": self.info.get("resolution", int(self.generator.output_shape[1])),
            "step": self.info.get("step"),
            "privacy": self.info.get("privacy"),    # the model's (ε, δ) and how they were accounted; None: not private
            "limits": {"num_max": NUM_MAX, "seed_max": SEED_MAX, "num_default": DEFAULT_NUM,
                       "truncation_min": sampling.TRUNCATION_MIN, "truncation_max": sampling.TRUNCATION_MAX},
        }

    def generate(self, label, seeds, truncation):
        """[len(seeds), R, R, 3] uint8, one generator call at a time."""
        with self._lock:
            return sampling.generate(self.generator, label, seeds, self.info["latent_dim"], truncation)


def _one_value(query, name):
    values = query.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise BadRequest(f"parameter {name} is given {len(values)} times: give it once")
    return values[0]


def _integer(query, name, default, low, high):
    text = _one_value(query, name)
    if text is None:
        return default
    if not _INTEGER.fullmatch(text):
        if re.fullmatch(r"\s*-\s*[0-9]+\s*", text):
            raise BadRequest(f"{name}={text} is negative: use an integer from {low} to {high}")
        raise BadRequest(f"{name}={text!r} is not a whole number: use an integer from {low} to {high}, "
                         f"digits only")
    value = int(text) if len(text) <= 18 else high + 1  # int() of thousands of digits is slow
    if not low <= value <= high:
        raise BadRequest(f"{name}={text} is out of range: use an integer from {low} to {high}")
    return value


def _truncation(query):
    text = _one_value(query, "truncation")
    if text is None or text.strip().lower() in ("", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise BadRequest(f"truncation={text!r} is not a number: use {sampling.TRUNCATION_MIN:g} to "
                         f"{sampling.TRUNCATION_MAX:g}, or leave it out for plain N(0, 1) noise")
    try:
        return sampling.check_truncation(value, flag="truncation")
    except UserError as e:
        raise BadRequest(str(e)) from None


def parse_request(path, query_string, class_names):
    """Validates a request for images.

    Args:
        path: one of the image endpoints.
        query_string: the URL's query, e.g. "label=melanoma&seed=0&num=16".
        class_names: the model's class names.

    Returns:
        (label int, seeds list of int, truncation float or None).

    Raises:
        BadRequest: naming the parameter, what is wrong, and the valid values.
    """
    query = urllib.parse.parse_qs(query_string, keep_blank_values=True)
    allowed = _ENDPOINTS[path]
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r} for {path}: it takes {', '.join(allowed)}")
    label_text = _one_value(query, "label")
    if label_text is None or not label_text.strip():
        raise BadRequest(f"parameter label is missing: pass label=<index or class name>, "
                         f"e.g. label=0 or label={class_names[0]}")
    try:
        label = sampling.resolve_label(label_text, class_names, flag="label")
    except UserError as e:
        raise BadRequest(str(e)) from None
    seed = _integer(query, "seed", 0, 0, SEED_MAX)
    num = 1
    if "num" in allowed:
        num = _integer(query, "num", DEFAULT_NUM, 1, NUM_MAX)
        if seed + num - 1 > SEED_MAX:
            raise BadRequest(f"seed={seed} with num={num} goes past the last seed {SEED_MAX}: "
                             f"use seed ≤ {SEED_MAX - num + 1} or a smaller num")
    return label, list(range(seed, seed + num)), _truncation(query)


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers GET for the page and the API; JSON errors for everything else."""

    server_version = "cgan-serve"
    error_content_type = "application/json"

    def __getattr__(self, name):
        # BaseHTTPRequestHandler answers a method without do_<METHOD> with 501; here every method
        # other than GET is a client error.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self):
        self._send_json({"error": f"method {self.command} is not allowed: use GET"}, 405,
                        extra_headers={"Allow": "GET"})

    def send_error(self, code, message=None, explain=None):
        """The base class's errors (malformed request line, headers too long) as JSON 4xx too."""
        # A request line that failed to parse leaves the version at HTTP/0.9, which would drop the
        # status line; and an unsupported HTTP version (505) is the client's to fix like any other.
        self.request_version = "HTTP/1.0"
        self._send_json({"error": message or self.responses.get(code, ("error",))[0]}, min(code, 400),
                        extra_headers={"Connection": "close"})

    def log_message(self, format, *args):
        if self.server.log_requests:
            super().log_message(format, *args)

    def _send(self, status, content_type, body, extra_headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, document, status=200, extra_headers=None):
        self._send(status, "application/json; charset=utf-8", (json.dumps(document) + "\n").encode(),
                   extra_headers)

    def do_GET(self):
        try:
            self._route()
        except BadRequest as e:
            self._send_json({"error": str(e)}, e.status)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away
        except Exception as e:  # a bug: say so without the traceback, keep it in the log
            traceback.print_exc(file=sys.stderr)
            self._send_json({"error": f"internal error ({type(e).__name__}): see the server's log"}, 500)

    def _route(self):
        url = urllib.parse.urlsplit(self.path)
        sampler = self.server.sampler
        if url.path in ("/", "/index.html"):
            with open(PAGE, "rb") as f:
                self._send(200, "text/html; charset=utf-8", f.read())
            return
        if url.path not in _ENDPOINTS:
            raise BadRequest(f"no such path {url.path}: the page is / and the API is "
                             f"{', '.join(_ENDPOINTS)}", status=404)
        if url.path == "/api/info":
            if url.query:
                raise BadRequest("/api/info takes no parameters")
            self._send_json(sampler.describe())
            return
        label, seeds, truncation = parse_request(url.path, url.query, sampler.info["class_names"])
        pictures = sampler.generate(label, seeds, truncation)                    # [N, R, R, 3]
        names, grid_name = sampling.file_names(label, sampler.info["class_names"][label], seeds, truncation)
        if url.path == "/api/image.png":
            self._send(200, "image/png", images.encode_png(pictures[0]),
                       {"Content-Disposition": f'inline; filename="{names[0]}"'})
        elif url.path == "/api/grid.png":
            self._send(200, "image/png", images.encode_png(images.image_grid(pictures)),
                       {"Content-Disposition": f'inline; filename="{grid_name}"'})
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
                for name, picture in zip(names, pictures):
                    archive.writestr(name, images.encode_png(picture))
                archive.writestr(grid_name, images.encode_png(images.image_grid(pictures)))
            zip_name = os.path.splitext(grid_name)[0] + ".zip"
            self._send(200, "application/zip", buffer.getvalue(),
                       {"Content-Disposition": f'attachment; filename="{zip_name}"'})


class Server(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer that carries the sampler its handlers use."""

    daemon_threads = True

    def __init__(self, address, sampler, log_requests):
        self.sampler = sampler
        self.log_requests = log_requests
        super().__init__(address, Handler)


def make_server(generator, info, host="127.0.0.1", port=0, model_name="generator.keras", log_requests=False):
    """Binds a server to (host, port); call serve_forever() on it.

    Args:
        generator: keras.Model from model_files.load_generator.
        info: its metadata (class_names, latent_dim, resolution, step).
        host: address to listen on; loopback by default, as the server has no authentication.
        port: TCP port; 0 picks a free one (server.server_address[1]).
        model_name: shown on the page.
        log_requests: print one line per request to stderr.

    Raises:
        UserError: the address cannot be bound.
    """
    try:
        return Server((host, port), Sampler(generator, info, model_name), log_requests)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e}): pass another --port "
                        f"(or --port=0 for any free one), or stop the server using it") from None


def serve(model_path, host="127.0.0.1", port=8000):
    """Loads the generator once and serves the page until Ctrl-C.

    Raises:
        UserError: the model cannot be loaded or the address cannot be bound.
    """
    generator, info = model_files.load_generator(model_path)
    server = make_server(generator, info, host, port, model_name=model_path, log_requests=True)
    bound_host, bound_port = server.server_address[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"Serving {model_path} (step {info.get('step')}, {len(info['class_names'])} classes) at "
          f"http://{shown_host}:{bound_port}/ — Ctrl-C stops", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("The server has no authentication: anyone who can reach this address can use it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.server_close()
