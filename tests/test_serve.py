import concurrent.futures
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from cgan.model import model_files, networks, sampling

from cgan.share import serve
from cgan.core.errors import UserError

CLASSES = ["actinic_keratosis", "basal_cell_carcinoma", "melanoma"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A tiny exported generator served in-process on a free port: (base URL, generator, info, workdir)."""
    workdir = tmp_path_factory.mktemp("run")
    generator = networks.build_generator(64, latent_dim=8, num_classes=3)
    info = {"class_names": CLASSES, "latent_dim": 8, "resolution": 64, "step": 7}
    model_files.save_models(str(workdir), generator, generator, info)
    loaded, loaded_info = model_files.load_generator(str(workdir / model_files.GENERATOR_FILE))
    httpd = serve.make_server(loaded, loaded_info, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", loaded, loaded_info, workdir
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def get(url, method="GET"):
    """(status, headers, body bytes) of a request, 4xx/5xx included."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def decode_png(body):
    return tf.io.decode_png(body).numpy()


def test_page_is_served(server):
    base, *_ = server
    status, headers, body = get(base + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert 'id="generate"' in page and "/api/grid.png" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_info(server):
    base, *_ = server
    status, headers, body = get(base + "/api/info")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    info = json.loads(body)
    assert info["class_names"] == CLASSES
    assert (info["latent_dim"], info["resolution"], info["step"]) == (8, 64, 7)
    assert info["privacy"] is None   # trained without --dp_epsilon
    assert info["limits"] == {"num_max": serve.NUM_MAX, "seed_max": 2**31 - 1, "num_default": 16,
                              "truncation_min": 0.05, "truncation_max": 10.0}


@pytest.mark.parametrize("num,rows,cols", [(1, 1, 1), (5, 2, 3), (16, 4, 4), (64, 8, 8)])
def test_grid_png_size(server, num, rows, cols):
    base, *_ = server
    status, headers, body = get(f"{base}/api/grid.png?label=melanoma&seed=3&num={num}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert decode_png(body).shape == (rows * 66 - 2, cols * 66 - 2, 3)  # 64-pixel tiles, 2-pixel gaps
    assert f'filename="class02_melanoma_seeds0003-{3 + num - 1:04d}.png"' in headers["Content-Disposition"]


@pytest.mark.parametrize("truncation", [None, 0.7])
def test_image_is_what_sampling_gives_for_the_seed(server, truncation):
    base, generator, *_ = server
    query = "" if truncation is None else f"&truncation={truncation}"
    status, _, body = get(f"{base}/api/image.png?label=2&seed=5{query}")
    assert status == 200
    expected = sampling.generate(generator, 2, [5], latent_dim=8, truncation=truncation)[0]
    np.testing.assert_array_equal(decode_png(body), expected)
    by_name = get(f"{base}/api/image.png?label=Melanoma&seed=5{query}")[2]
    np.testing.assert_array_equal(decode_png(by_name), expected)


def test_grid_tiles_are_the_single_images(server):
    base, *_ = server
    grid = decode_png(get(f"{base}/api/grid.png?label=0&seed=10&num=4&truncation=1.5")[2])  # 2×2
    for i, (top, left) in enumerate([(0, 0), (0, 66), (66, 0), (66, 66)]):
        single = decode_png(get(f"{base}/api/image.png?label=0&seed={10 + i}&truncation=1.5")[2])
        np.testing.assert_array_equal(grid[top:top + 64, left:left + 64], single)


def test_zip_holds_each_image_and_the_grid(server):
    base, generator, *_ = server
    status, headers, body = get(f"{base}/api/images.zip?label=basal_cell_carcinoma&seed=4&num=3&truncation=0.5")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert 'attachment; filename="class01_basal_cell_carcinoma_seeds0004-0006_trunc0.50.zip"' == \
        headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(body))
    names = [f"class01_basal_cell_carcinoma_seed{s:04d}_trunc0.50.png" for s in (4, 5, 6)]
    assert archive.namelist() == names + ["class01_basal_cell_carcinoma_seeds0004-0006_trunc0.50.png"]
    expected = sampling.generate(generator, 1, [4, 5, 6], latent_dim=8, truncation=0.5)
    for name, picture in zip(names, expected):
        np.testing.assert_array_equal(decode_png(archive.read(name)), picture)


def test_concurrent_requests_give_the_sequential_images(server):
    base, *_ = server
    urls = [f"{base}/api/image.png?label={s % 3}&seed={s}" for s in range(8)]
    sequential = [get(url)[2] for url in urls]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        concurrent_bodies = list(pool.map(lambda url: get(url)[2], urls))
    assert concurrent_bodies == sequential


@pytest.mark.parametrize("path,status,message", [
    ("/api/grid.png", 400, "parameter label is missing"),
    ("/api/grid.png?label=", 400, "parameter label is missing"),
    ("/api/image.png?seed=3", 400, "parameter label is missing"),
    ("/api/grid.png?label=3", 400, "label=3 is out of range"),
    ("/api/grid.png?label=-1", 400, "label=-1 is out of range"),
    ("/api/grid.png?label=nevus", 400, "label=nevus is not a class of this model"),
    ("/api/grid.png?label=0&seed=abc", 400, "seed='abc' is not a whole number"),
    ("/api/grid.png?label=0&seed=1.5", 400, "seed='1.5' is not a whole number"),
    ("/api/grid.png?label=0&seed=", 400, "seed='' is not a whole number"),
    ("/api/grid.png?label=0&seed=-1", 400, "seed=-1 is negative"),
    ("/api/image.png?label=0&seed=2147483648", 400, "seed=2147483648 is out of range"),
    ("/api/image.png?label=0&seed=" + "9" * 5000, 400, "is out of range"),
    ("/api/grid.png?label=0&seed=2147483600&num=64", 400, "goes past the last seed"),
    ("/api/grid.png?label=0&num=0", 400, "num=0 is out of range: use an integer from 1 to 64"),
    ("/api/grid.png?label=0&num=65", 400, "num=65 is out of range: use an integer from 1 to 64"),
    ("/api/images.zip?label=0&num=100000", 400, "num=100000 is out of range"),
    ("/api/grid.png?label=0&num=ten", 400, "num='ten' is not a whole number"),
    ("/api/grid.png?label=0&truncation=0.01", 400, "truncation=0.01 is out of range: use 0.05 to 10"),
    ("/api/grid.png?label=0&truncation=11", 400, "truncation=11 is out of range"),
    ("/api/grid.png?label=0&truncation=-1", 400, "truncation=-1 is out of range"),
    ("/api/grid.png?label=0&truncation=abc", 400, "truncation='abc' is not a number"),
    ("/api/grid.png?label=0&truncation=nan", 400, "truncation='nan' is not a number"),
    ("/api/grid.png?label=0&truncation=inf", 400, "truncation='inf' is not a number"),
    ("/api/grid.png?label=0&colour=red", 400, "unknown parameter 'colour' for /api/grid.png"),
    ("/api/image.png?label=0&num=4", 400, "unknown parameter 'num' for /api/image.png"),
    ("/api/grid.png?label=0&seed=1&seed=2", 400, "parameter seed is given 2 times"),
    ("/api/info?label=0", 400, "/api/info takes no parameters"),
    ("/api/nothing", 404, "no such path /api/nothing"),
    ("/generator.keras", 404, "no such path /generator.keras"),
    ("/../../etc/passwd", 404, "no such path"),
])
def test_bad_requests_get_a_json_error(server, path, status, message):
    base, *_ = server
    got_status, headers, body = get(base + path)
    assert got_status == status
    assert headers["Content-Type"].startswith("application/json")
    assert message in json.loads(body)["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_are_not_allowed(server, method):
    base, *_ = server
    status, headers, body = get(base + "/api/grid.png?label=0", method=method)
    assert status == 405 and headers["Allow"] == "GET"
    assert json.loads(body)["error"] == f"method {method} is not allowed: use GET"


@pytest.mark.parametrize("request_line", [b"GET /api/info HTTP/1.x", b"GET /api/info HTTP/2.0", b"GET",
                                          b"GET /api/info HTTP/1.1 extra"])
def test_malformed_request_line_is_a_client_error(server, request_line):
    base, *_ = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request_line + b"\r\n\r\n")
        reply = connection.makefile("rb").read().decode()
    assert reply.startswith("HTTP/1.0 400 ") and '{"error": ' in reply


def test_busy_port_is_one_clear_error(server):
    base, generator, info, _ = server
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=rf"cannot listen on 127.0.0.1:{port} .*pass another --port"):
        serve.make_server(generator, info, port=port)


@pytest.mark.parametrize("args,message", [
    ([], "--label is required: pass --label=3 or --label=melanoma (or --serve for the web page)"),
    (["--serve", "--label=3"], "--label cannot be used with --serve"),
    (["--serve", "--num=4", "--truncation=0.5"], "--num, --truncation cannot be used with --serve"),
    (["--label=3", "--port=9000"], "--port only applies with --serve"),
])
def test_sample_py_mode_flags_are_one_clear_line(args, message):
    result = subprocess.run([sys.executable, "sample.py", *args], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"sample.py: error: {message}")


@pytest.mark.slow
def test_sample_py_serve_answers_on_its_port(server):
    *_, workdir = server
    process = subprocess.Popen([sys.executable, "sample.py", "--serve", "--port=0",
                                f"--model={workdir / model_files.GENERATOR_FILE}"], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:[0-9]+/", line).group(0)
        status, _, body = get(url + "api/info")
        assert status == 200 and json.loads(body)["step"] == 7
    finally:
        process.terminate()
        process.wait(timeout=60)
