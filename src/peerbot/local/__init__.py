"""Local servers with a real WebRTC peer on the far side: the embedded default and the test bed."""

from .orbit_server import LocalOrbitServer
from .orga_server import LocalOrgaServer

__all__ = ["LocalOrbitServer", "LocalOrgaServer"]
