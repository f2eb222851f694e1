"""The `pki` fixture: a test CA, server and client certificates made with the
`openssl` command line, once per module (tls_helpers.make_pki says what)."""

from __future__ import annotations

import pytest
from tls_helpers import OPENSSL, PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    if OPENSSL is None:
        pytest.skip("the openssl command line is not installed (apt-get install openssl)")
    return make_pki(tmp_path_factory.mktemp("pki"))
