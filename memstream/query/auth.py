"""API keys, each allowed a set of owners. Every ``/v1`` route checks the caller's key
against the owner it touches: no key or an unknown key is 401, another owner's data is 403.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger(__name__)

#: Documented in the OpenAPI document as two equivalent schemes.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")

ALL_OWNERS = "*"


class AccessControl:
    def __init__(self, keys: Mapping[str, Sequence[str]]) -> None:
        self._keys = {k: frozenset(v) for k, v in keys.items()}
        if not self._keys:
            log.warning(
                "no API keys configured: the query service is open to anyone who can reach it"
            )

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def owners_of(self, presented: str | None) -> frozenset[str]:
        """The owners a key may access; 401 when authentication is on and the key is wrong."""
        if not self.enabled:
            return frozenset({ALL_OWNERS})
        if not presented:
            raise HTTPException(401, "missing API key (X-API-Key or Authorization: Bearer)")
        for key, owners in self._keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                return owners
        raise HTTPException(401, "unknown API key")

    def check(self, presented: str | None, owner_id: str) -> None:
        owners = self.owners_of(presented)
        if ALL_OWNERS not in owners and owner_id not in owners:
            raise HTTPException(403, f"this API key may not access owner {owner_id!r}")


async def presented_key(
    header: Annotated[str | None, Security(api_key_header)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    if header:
        return header
    return credentials.credentials if credentials is not None else None


#: The caller's key, as a route parameter (module level: FastAPI resolves string annotations
#: in the module's namespace).
ApiKey = Annotated[str | None, Depends(presented_key)]
