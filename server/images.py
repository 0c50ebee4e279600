"""Stimulus images by id: compressed derivatives made once per stimulus set, PNG masters untouched."""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from experiments.db import Database
from experiments.db.models import StimulusImage, StimulusSetRecord
from experiments.errors import NotFound

MIMETYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class ImageFile:
    """Where one image's master lives and its content hash."""

    master: Path
    sha256: str


class ImageStore:
    """Looks images up by (experiment id, image id) and serves cached derivatives."""

    def __init__(self, db: Database, cache_dir: Path, fmt: str = "webp", quality: int = 90):
        self.db = db
        self.cache_dir = Path(cache_dir)
        self.fmt = fmt
        self.quality = quality
        self.lookup = lru_cache(maxsize=100_000)(self._lookup)
        self.experiment_ids: dict[str, int] = {}

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.fmt]

    def _lookup(self, experiment_id: int, image_id: str) -> ImageFile:
        with self.db.read() as session:
            row = session.execute(
                select(StimulusImage.path, StimulusImage.sha256, StimulusSetRecord.path)
                .join(StimulusSetRecord, StimulusSetRecord.id == StimulusImage.set_id)
                .where(StimulusImage.experiment_id == experiment_id,
                       StimulusImage.image_id == image_id)).first()
        if row is None:
            raise NotFound(f"no image {image_id!r} in this experiment")
        rel, sha, set_path = row
        root = Path(set_path).resolve()
        master = (root / rel).resolve()
        if root not in master.parents:
            raise NotFound(f"image {image_id!r} lies outside its stimulus set")
        return ImageFile(master, sha or "")

    def _cache_path(self, image: ImageFile) -> Path:
        digest = image.sha256 or hashlib.sha256(
            f"{image.master}:{image.master.stat().st_mtime_ns}".encode()).hexdigest()
        suffix = "jpg" if self.fmt == "jpeg" else self.fmt
        return self.cache_dir / digest[:2] / f"{digest}.q{self.quality}.{suffix}"

    def file_for(self, experiment_id: int, image_id: str) -> Path:
        """The file to send for an image: its derivative (made now if missing) or the master."""
        image = self.lookup(experiment_id, image_id)
        if not image.master.is_file():
            raise NotFound(f"image {image_id!r}: file missing on the server")
        if self.fmt == "png":
            return image.master
        target = self._cache_path(image)
        if not target.is_file():
            self._make(image.master, target)
        return target

    def _make(self, master: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(master) as source:
            picture = source.convert("RGB")
        handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        os.close(handle)
        try:
            if self.fmt == "webp":
                picture.save(tmp, "WEBP", quality=self.quality, method=4)
            else:
                picture.save(tmp, "JPEG", quality=self.quality, subsampling=0, optimize=True)
            os.replace(tmp, target)  # atomic: concurrent workers never see half a file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @property
    def public_dir(self) -> Path:
        """The root under which `prepare` links each image at its URL path, img/<key>/<id>."""
        return self.cache_dir / "public"

    def prepare(self, experiment_id: int, progress: bool = False, key: str | None = None) -> int:
        """Make every missing derivative of an experiment ahead of time; returns the image count.

        With `key` (the experiment's name@version, as in its image URLs) each image is also
        linked at public_dir/img/<key>/<image id>, so a proxy can serve /img/ from disk
        (`nginx_locations`). Existing derivatives are kept, so a stopped run resumes.
        """
        from tqdm import tqdm

        with self.db.read() as session:
            ids = session.scalars(select(StimulusImage.image_id).where(
                StimulusImage.experiment_id == experiment_id)).all()
        for image_id in tqdm(ids, desc=f"images of experiment {experiment_id}", unit="img",
                             disable=not progress, leave=False):
            path = self.file_for(experiment_id, image_id)
            if key is not None:
                self._publish(key, image_id, path)
        return len(ids)

    def _publish(self, key: str, image_id: str, target: Path) -> None:
        """A relative symlink public_dir/img/key/image_id -> the derivative (replaced atomically)."""
        folder = Path(os.path.abspath(self.public_dir / "img" / key))
        link = Path(os.path.normpath(folder / image_id))  # not resolve(): it follows the link
        if folder not in link.parents:
            raise NotFound(f"image id {image_id!r} is not a plain file name")
        link.parent.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(target.resolve(), link.parent.resolve())
        if link.is_symlink() and os.readlink(link) == relative:
            return
        tmp = link.with_name(link.name + ".link")
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(relative, tmp)
        os.replace(tmp, link)

    def prepare_open(self, progress: bool = False) -> dict[str, int]:
        """Prepare the derivatives of every open experiment: {experiment key: images}."""
        from experiments.db.models import Experiment

        with self.db.read() as session:
            experiments = session.scalars(select(Experiment).where(
                Experiment.status == "open").order_by(Experiment.id)).all()
        return {e.key: self.prepare(e.id, progress, key=e.key) for e in experiments}


def nginx_locations(public_dir: Path, upstream: str, mimetype: str = "image/webp") -> str:
    """nginx `location` blocks: /img/ from the prepared files on disk, everything else (and any
    image not prepared) passed to gunicorn at `upstream` (host:port)."""
    return f"""# interpsy: put inside the server {{ ... }} block that terminates TLS
location /img/ {{
    root {Path(public_dir).resolve()};
    types {{ }}
    default_type {mimetype};
    add_header Cache-Control "public, max-age=31536000, immutable";
    access_log off;
    try_files $uri @interpsy;
}}
location / {{
    proxy_pass http://{upstream};
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
}}
location @interpsy {{
    proxy_pass http://{upstream};
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
}}
"""
