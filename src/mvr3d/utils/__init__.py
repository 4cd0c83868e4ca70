"""Small shared helpers: atomic file writes, seeding and run provenance."""

from mvr3d.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from mvr3d.utils.provenance import provenance
from mvr3d.utils.seeding import seed_everything

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "provenance", "seed_everything"]
