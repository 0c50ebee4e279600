"""Stimulus images by id: compressed derivatives made once per stimulus set, PNG masters untouched."""
from __future__ import annotations

import hashlib
import io
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from experiments.db import Database
from experiments.db.images import ImageFile, OutsideSet, image_files
from experiments.db.models import Experiment, StimulusImage, Task, Trial
from experiments.errors import NotFound
from experiments.sessions import spec_of
from experiments.tasks import get_task
from server.padding import pad, pad_target

MIMETYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}
# Every served file's modification time (Last-Modified, nginx's ETag): creation order
# followed a query's role (the database's row order), so no file keeps its own.
FIXED_MTIME = 946_684_800  # 2000-01-01 UTC
UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(UMASK)


def public_ids(db: Database, experiment_id: int) -> dict[str, str]:
    """{image_id: public_id} of an experiment's images."""
    with db.read() as session:
        return dict(session.execute(select(StimulusImage.image_id, StimulusImage.public_id)
                                    .where(StimulusImage.experiment_id == experiment_id)).all())


class ImageStore:
    """Looks images up by (experiment id, image id) and serves cached derivatives."""

    def __init__(self, db: Database, cache_dir: Path, fmt: str = "webp", quality: int = 90):
        self.db = db
        self.cache_dir = Path(cache_dir)
        self.fmt = fmt
        self.quality = quality
        self.lookup = lru_cache(maxsize=100_000)(self._lookup)
        self.padded_size = lru_cache(maxsize=64)(self._padded_size)
        self.choice_ids = lru_cache(maxsize=64)(self._choice_ids)
        self.public_ids = lru_cache(maxsize=64)(self._public_ids)
        self.experiment_ids: dict[str, int] = {}
        self.unlinked: dict[str, list[str]] = {}  # experiment key -> ids prepare did not link

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.fmt]

    def _public_ids(self, experiment_id: int) -> dict[str, str]:
        return public_ids(self.db, experiment_id)  # fixed at build, so cached per process

    def _lookup(self, experiment_id: int, public_id: str) -> ImageFile:
        # Messages name the public id only: the internal id tells the image's role.
        try:
            with self.db.read() as session:
                found = image_files(session, experiment_id, public_id)
        except OutsideSet as exc:
            raise NotFound(str(exc)) from None
        if not found:
            raise NotFound("no such image in this experiment")
        return found[0]

    def _cache_path(self, image: ImageFile) -> Path:
        digest = image.sha256 or hashlib.sha256(
            f"{image.path}:{image.path.stat().st_mtime_ns}".encode()).hexdigest()
        suffix = "jpg" if self.fmt == "jpeg" else self.fmt
        return self.cache_dir / digest[:2] / f"{digest}.q{self.quality}.{suffix}"

    def _plain(self, experiment_id: int, public_id: str) -> Path:
        """An image's unpadded file: its derivative (made now) or, for png, the master."""
        image = self.lookup(experiment_id, public_id)
        if not image.path.is_file():
            raise NotFound(f"image {public_id!r}: file missing on the server")
        if self.fmt == "png":
            return image.path
        target = self._cache_path(image)
        if not target.is_file():
            self._make(image.path, target)
        return target

    def _choice_ids(self, experiment_id: int) -> frozenset[str]:
        """Public ids of the images some trial of the experiment asks to choose between."""
        ids = self.public_ids(experiment_id)
        with self.db.read() as session:
            experiment = session.get(Experiment, experiment_id)
            task_type = get_task(spec_of(experiment).task.type)
            stimuli = session.scalars(select(Trial.stimulus).join(Task, Task.id == Trial.task_id)
                                      .where(Task.experiment_id == experiment_id)).all()
        return frozenset(ids[i] for stimulus in stimuli for i in task_type.choice_ids(stimulus))

    def _padded_size(self, experiment_id: int) -> int:
        """The one byte size the experiment's choice images are served at (their plain files
        made)."""
        return pad_target([self._plain(experiment_id, i).stat().st_size
                           for i in self.choice_ids(experiment_id)] or [0])

    def file_for(self, experiment_id: int, public_id: str) -> Path:
        """The file to send for an image (by public id), with one fixed modification time:
        an image some trial asks to choose between is padded to the experiment's one size
        (nothing in its bytes, size, ETag or Last-Modified follows its role); the others (the
        references, whose side the page shows) go as they are."""
        plain = self._plain(experiment_id, public_id)
        if public_id not in self.choice_ids(experiment_id):
            return self._plain_file(plain)
        size = self.padded_size(experiment_id)
        digest = hashlib.sha256(str(plain.resolve()).encode()).hexdigest() \
            if self.fmt == "png" else plain.name.split(".")[0]
        suffix = "jpg" if self.fmt == "jpeg" else self.fmt
        target = self.cache_dir / digest[:2] / f"{digest}.q{self.quality}.{size}b.{suffix}"
        if not target.is_file():
            self._write(target, pad(plain.read_bytes(), size, self.fmt))
        return target

    def _plain_file(self, plain: Path) -> Path:
        """An unpadded image as served: a derivative is a cache file already (FIXED_MTIME); a
        png master is copied into the cache first, so its own modification time is never
        sent."""
        if self.fmt != "png":
            return plain
        digest = hashlib.sha256(str(plain.resolve()).encode()).hexdigest()
        target = self.cache_dir / digest[:2] / f"{digest}.png"
        if not target.is_file():
            self._write(target, plain.read_bytes())
        return target

    def _write(self, target: Path, data: bytes) -> None:
        """Write atomically, readable by a proxy's user, at FIXED_MTIME."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            _readable(Path(tmp))
            os.utime(tmp, (FIXED_MTIME, FIXED_MTIME))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _make(self, master: Path, target: Path) -> None:
        with Image.open(master) as source:
            picture = source.convert("RGB")
        encoded = io.BytesIO()
        if self.fmt == "webp":
            picture.save(encoded, "WEBP", quality=self.quality, method=4)
        else:
            picture.save(encoded, "JPEG", quality=self.quality, subsampling=0, optimize=True)
        self._write(target, encoded.getvalue())

    @property
    def public_dir(self) -> Path:
        """The root under which `prepare` links each image at its URL path, img/<key>/<id>."""
        return self.cache_dir / "public"

    def prepare(self, experiment_id: int, progress: bool = False, key: str | None = None) -> int:
        """Make every missing derivative of an experiment ahead of time; returns the image count.

        With `key` (the experiment's name@version, as in its image URLs) each image is also
        linked at public_dir/img/<key>/<public id>, so a proxy can serve /img/ from disk
        (`nginx_locations`); ids that cannot be a plain path are left to the app and listed in
        `unlinked[key]`. Existing derivatives are kept, so a stopped run resumes.
        """
        from tqdm import tqdm

        with self.db.read() as session:
            ids = session.scalars(select(StimulusImage.public_id).where(
                StimulusImage.experiment_id == experiment_id)).all()
        skipped = []
        for public_id in tqdm(ids, desc=f"images of experiment {experiment_id}", unit="img",
                              disable=not progress, leave=False):
            path = self.file_for(experiment_id, public_id)
            if key is not None and not self._publish(key, public_id, path):
                skipped.append(public_id)
            elif key is not None and path.parent.parent == self.cache_dir:
                _readable(path)  # derivatives made before 2026-12 were 0600
        if key is not None:
            self.unlinked[key] = skipped
        return len(ids)

    def _publish(self, key: str, image_id: str, target: Path) -> bool:
        """A relative symlink public_dir/img/key/image_id -> the derivative, replaced atomically;
        False (nothing linked) for an id that is not a clean relative path or collides."""
        parts = image_id.split("/")
        if (not image_id or image_id.startswith("/") or any(p in ("", ".", "..") for p in parts)
                or parts[-1].startswith(".")):
            return False
        folder = self.public_dir / "img" / key
        link = folder / image_id
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            relative = os.path.relpath(target.resolve(), link.parent.resolve())
            if link.is_symlink() and os.readlink(link) == relative:
                return True
            if link.exists() and not link.is_symlink():
                return False  # a folder of other ids ("a" beside "a/b"): the app serves this one
            # a hidden, unique temporary name: no image id can take it, no two writers share it
            tmp = link.with_name(f".{link.name}.{secrets.token_hex(6)}.tmp")
            os.symlink(relative, tmp)
            os.replace(tmp, link)
            return True
        except OSError:
            return False

    def prepare_open(self, progress: bool = False) -> dict[str, int]:
        """Prepare the derivatives of every open experiment: {experiment key: images}."""
        from experiments.db.models import Experiment

        with self.db.read() as session:
            experiments = session.scalars(select(Experiment).where(
                Experiment.status == "open").order_by(Experiment.id)).all()
        return {e.key: self.prepare(e.id, progress, key=e.key) for e in experiments}


def _readable(path: Path) -> None:
    """Give a derivative the umask's usual read bits (a proxy's user must read it)."""
    mode = path.stat().st_mode & 0o777
    wanted = 0o666 & ~UMASK
    if mode & wanted != wanted:
        path.chmod(mode | wanted)


def upstream_address(host: str, port: int) -> str:
    """host:port as nginx's proxy_pass takes it (wildcards -> loopback, IPv6 in brackets)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_locations(public_dir: Path, upstream: str, mimetype: str = "image/webp",
                    root_location: bool = False) -> str:
    """nginx `location` blocks: /img/ from the prepared files on disk, images not linked passed to
    gunicorn at `upstream` (host:port); `root_location` adds `location /` passing the rest."""
    root = str(Path(public_dir).resolve()).replace("\\", "\\\\").replace('"', '\\"')
    proxy = (f"    proxy_pass http://{upstream};\n"
             "    proxy_set_header Host $http_host;  # with its port: the form's Origin has it\n"
             "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
             "    proxy_set_header X-Forwarded-Proto $scheme;\n")
    rest = (f"location / {{\n{proxy}}}\n" if root_location else
            "# the server block's own `location / { proxy_pass ...; }` passes everything else\n")
    return (f"# interpsy: include inside the server {{ ... }} block that terminates TLS\n"
            f"location /img/ {{\n"
            f'    root "{root}";\n'
            f"    types {{ }}\n"
            f"    default_type {mimetype};\n"
            f'    add_header Cache-Control "public, max-age=31536000, immutable";\n'
            f"    access_log off;\n"
            f"    try_files $uri @interpsy;\n"
            f"}}\n"
            f"location @interpsy {{\n{proxy}}}\n" + rest)
