"""An OpenID Connect provider for tests and the demo: discovery, JWKS, an authorize page that approves at once, a
token endpoint issuing RS256 ID tokens, and userinfo."""

from simulators.oidc.simulator import OidcPerson, OidcSimulator

__all__ = ["OidcPerson", "OidcSimulator"]
