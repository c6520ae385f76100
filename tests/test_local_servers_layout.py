"""The local servers as libraries: importable where documented, silent, and strict about their life."""

from __future__ import annotations

import pytest

import peerbot.local
from peerbot.errors import ConfigurationError, SessionStateError
from peerbot.local import LocalOrbitServer, LocalOrgaServer
from peerbot.local.orbit_server import LocalOrbitServer as OrbitFromModule
from peerbot.local.orga_server import DEMO_USER_EMAIL


def test_both_servers_are_exported_from_peerbot_local_and_their_modules() -> None:
    assert peerbot.local.__all__ == ["LocalOrbitServer", "LocalOrgaServer"]
    assert OrbitFromModule is LocalOrbitServer


@pytest.mark.parametrize("server_class", [LocalOrgaServer, LocalOrbitServer])
async def test_a_server_prints_nothing_and_refuses_a_second_start_with_a_session_state_error(
    server_class: type, capsys: pytest.CaptureFixture[str]
) -> None:
    server = server_class()
    with pytest.raises(SessionStateError):
        server.base_url  # noqa: B018 - not listening yet
    async with server:
        with pytest.raises(SessionStateError):
            await server.start()
        assert server.base_url.startswith("http://127.0.0.1:")
    assert capsys.readouterr() == ("", "")


async def test_the_orga_server_offers_a_demo_user_email_and_hides_its_key_in_repr() -> None:
    async with LocalOrgaServer() as server:
        assert server.user_email == DEMO_USER_EMAIL == "you@peerbot.local"
        assert server.api_key not in repr(server)
    with pytest.raises(ConfigurationError):
        LocalOrgaServer(user_email="not an email")


@pytest.mark.parametrize("entry", [{"urls": "http://x"}, {"urls": "turn:x:3478"}, {"urls": []}, "stun:x"])
@pytest.mark.parametrize("server_class", [LocalOrgaServer, LocalOrbitServer])
def test_a_bad_ice_server_setting_is_a_configuration_error_from_the_shared_parser(server_class: type,
                                                                                  entry: object) -> None:
    with pytest.raises(ConfigurationError, match="ice_servers"):
        server_class(ice_servers=[entry])
