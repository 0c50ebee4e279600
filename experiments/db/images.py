"""Where an experiment's images lie: each stored image's master file inside its stimulus set
(one reader for the server, the lab client and the machine observers)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from experiments.db.models import StimulusImage, StimulusSetRecord
from experiments.errors import InterpsyError


@dataclass(frozen=True)
class ImageFile:
    """One image: its id in the trials, its master file, its content hash, its set folder."""

    image_id: str
    path: Path
    sha256: str
    set_dir: Path
    public_id: str = ""


class OutsideSet(InterpsyError):
    """A stored image path that leads out of its stimulus set's folder."""


def image_files(session: OrmSession, experiment_id: int, public_id: str | None = None
                ) -> list[ImageFile]:
    """The experiment's images (only the one with `public_id`, when given); a stored path that
    leaves its set's folder is refused."""
    query = (select(StimulusImage.image_id, StimulusImage.public_id, StimulusImage.path,
                    StimulusImage.sha256, StimulusSetRecord.path)
             .join(StimulusSetRecord, StimulusSetRecord.id == StimulusImage.set_id)
             .where(StimulusImage.experiment_id == experiment_id))
    if public_id is not None:
        query = query.where(StimulusImage.public_id == public_id)
    found = []
    for image_id, public, rel, sha256, set_path in session.execute(query):
        root = Path(set_path).resolve()
        master = (root / rel).resolve()
        if root not in master.parents:
            raise OutsideSet(f"image {public or image_id!r} lies outside its stimulus set")
        found.append(ImageFile(image_id, master, sha256 or "", root, public or ""))
    return found
