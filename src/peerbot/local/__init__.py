"""Local servers with a real WebRTC peer on the far side: the embedded default and the test bed."""

from .orga_server import LocalOrgaServer, serve

__all__ = ["LocalOrgaServer", "serve"]
