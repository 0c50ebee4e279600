"""nginx in front of the app: prepared images come from disk, everything else from the app."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from experiments.cli import main as cli_main
from experiments.db.models import StimulusImage
from server.images import ImageStore, nginx_locations
from tests.nginx import NGINX, Nginx
from tests.server.conftest import LiveServer, build, make_app, start_session

needs_nginx = pytest.mark.skipif(not Path(NGINX).exists(),
                                 reason="needs Debian's nginx (apt-get install nginx)")


def test_serve_links_every_image_at_its_url_path(db, tmp_path, small_set, monkeypatch):
    key = build(db, tmp_path, small_set)
    cache = tmp_path / "cache"
    monkeypatch.setenv("INTERPSY_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("INTERPSY_IMAGE_CACHE", str(cache))
    monkeypatch.setattr("server.cli.os.execv", lambda path, args: None)
    conf = tmp_path / "interpsy-nginx.conf"
    assert cli_main(["serve", "--database", db.url, "--port", "8123",
                     "--nginx-config", str(conf)]) == 0
    text = conf.read_text()
    assert f'root "{(cache / "public").resolve()}";' in text
    assert "proxy_pass http://127.0.0.1:8123;" in text and "try_files $uri @interpsy;" in text
    assert "\nlocation / {" not in text  # the server block's own proxy location stays
    links = [p for p in (cache / "public" / "img" / key).rglob("*") if p.is_symlink()]
    with db.read() as session:
        ids = session.scalars(select(StimulusImage.public_id)).all()
    assert sorted(p.name for p in links) == sorted(ids)
    # relative links into the derivative cache: the cache folder can move as a whole
    assert all(not os.path.isabs(os.readlink(p)) and p.resolve().suffix == ".webp" for p in links)
    # a second start keeps the links as they are
    before = {p: os.readlink(p) for p in links}
    assert cli_main(["serve", "--database", db.url]) == 0
    assert {p: os.readlink(p) for p in links} == before


@pytest.fixture
def shared_folder():
    """A folder nginx's unprivileged workers can read (pytest's tmp_path is private, 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="interpsy-proxy-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@needs_nginx
def test_nginx_serves_prepared_images_from_disk_and_the_rest_from_the_app(db, tmp_path,
                                                                           small_set,
                                                                           shared_folder):
    """nginx's workers run as an unprivileged user, as in a deployment: the derivatives and
    links `prepare` makes must be readable by it."""
    key = build(db, tmp_path, small_set)
    app = make_app(db, tmp_path, image_cache=shared_folder / "cache")
    store = app.extensions["interpsy"].images
    assert store.prepare_open()[key] > 0 and store.unlinked[key] == []
    live = LiveServer(app)
    upstream = live.url.removeprefix("http://")
    nginx = Nginx(shared_folder / "nginx", nginx_locations(store.public_dir, upstream,
                                                           root_location=True))
    nginx.start()
    url = nginx.url
    try:
        client = app.test_client()
        started = start_session(client, key)
        state = client.get(f"/api/sessions/{started.session_id}", headers=started.headers).json
        image_id = state["practice"][0]["stimulus"]["query_a"]
        direct = client.get(state["image_base"] + image_id)
        via = httpx.get(url + state["image_base"] + image_id)
        assert via.status_code == 200 and via.content == direct.data
        assert via.headers["content-type"] == "image/webp"
        assert "immutable" in via.headers["cache-control"]
        # the API goes through to the app
        api = httpx.get(f"{url}/api/sessions/{started.session_id}", headers=started.headers)
        assert api.status_code == 200 and api.json()["next_index"] == 0
        # an image without a link (prepare not run for it) is answered by the app
        other = state["practice"][0]["stimulus"]["query_b"]
        (store.public_dir / "img" / key / other).unlink()
        fallback = httpx.get(url + state["image_base"] + other)
        assert fallback.content == client.get(
            state["image_base"] + other).data, (fallback.status_code, fallback.text[:300])
        # with the app down, prepared images still load; the API says the app is unreachable
        live.stop()
        assert httpx.get(url + state["image_base"] + image_id).content == direct.data
        assert httpx.get(f"{url}/api/health").status_code == 502
    finally:
        nginx.stop()
        live.stop()


def test_ids_that_are_not_plain_paths_are_left_to_the_app(db, tmp_path):
    """Image ids come from stimulus sets: '..', a folder clash or a hidden name must not make
    serve fail or a link point at another image."""
    store = ImageStore(db, tmp_path / "cache")
    target = tmp_path / "x.webp"
    target.write_bytes(b"RIFF")
    other = tmp_path / "y.webp"
    other.write_bytes(b"RIFF2")
    assert store._publish("exp@1", "b", other)
    for bad in ("..", "../evil", "a/../b", "/abs", "a//b", ".hidden", "a/.b", ""):
        assert not store._publish("exp@1", bad, target), bad
    assert (store.public_dir / "img" / "exp@1" / "b").read_bytes() == b"RIFF2"
    assert not (tmp_path / "cache" / "evil").exists()
    assert store._publish("exp@1", "a/b", target)
    assert not store._publish("exp@1", "a", target)  # "a" is the folder of "a/b"
    assert (store.public_dir / "img" / "exp@1" / "a" / "b").read_bytes() == b"RIFF"
    leftovers = [p for p in (store.public_dir / "img").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


@needs_nginx
def test_consent_through_nginx_on_its_own_port_as_documented(db, tmp_path, small_set,
                                                             shared_folder):
    """The generated locations in a server block on a non-default port: the consent POST's
    Origin names the port, so the Host nginx passes on must keep it ($http_host; $host drops it
    and every consent was refused with 403)."""
    key = build(db, tmp_path, small_set)
    app = make_app(db, tmp_path, image_cache=shared_folder / "cache")
    store = app.extensions["interpsy"].images
    live = LiveServer(app)
    nginx = Nginx(shared_folder / "nginx", nginx_locations(
        store.public_dir, live.url.removeprefix("http://"), root_location=True))
    nginx.start()
    try:
        with httpx.Client(base_url=nginx.url) as browser:
            page = browser.get(f"/x/{key}/", follow_redirects=True)
            entry = re.search(r'name="entry" value="([^"]+)"', page.text).group(1)
            consent = browser.post(f"/x/{key}/start", headers={"Origin": nginx.url},
                                   data={"entry": entry, "consent": "yes", "window_width": 1280,
                                         "window_height": 800})
            assert consent.status_code == 303, consent.text[:500]
            assert consent.headers["location"].startswith(f"{nginx.url}/") or \
                consent.headers["location"].startswith("/")
    finally:
        nginx.stop()
        live.stop()
