"""The trust policy: may this plugin version be installed, and is it still what was trusted?

Two inputs: ``[policy]`` in ``config.toml`` (allow, deny, ``require-signatures``) and the
keyring in ``<home>/keys`` (trusted keys, each bound to namespaces; see :mod:`.signing`).

At install, :meth:`Trust.check_bundle` decides for each bundle, before anything is written:

- a plugin the policy denies (or does not allow) is refused;
- a ``MANIFEST.json.sig`` that is malformed or truncated, or that does not verify with
  the key it names when that key is in the keyring, is refused — always, whatever the
  policy: a signature that fails is never accepted;
- a signature by a key not in the keyring (it cannot be checked), or by a key not
  trusted for the plugin's namespace, is refused where signatures are required, and
  otherwise installed as unsigned with a warning saying so;
- an unsigned bundle is refused where signatures are required.

The receipt records the signer only when the signature verified with a key trusted for
the namespace. ``verify`` (:meth:`Trust.installed_problems`) checks that signature again
against the keyring as it is now, and reports an installed version that the policy now
requires to be signed and is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ..config import Policy
from ..errors import BundleError, KeyringError, TrustError
from .bundle import MANIFEST_JSON, SIGNATURE
from .signing import (
    Keyring,
    TrustedKey,
    describe,
    namespace_of,
    parse_signature,
    verify_signature,
)

if TYPE_CHECKING:
    from .bundle import ReadBundle
    from .layout import Receipt

__all__ = ["Trust", "Verdict", "signature_status"]


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """What the policy says of a bundle it lets in: the key that signed it (verified, and
    trusted for its namespace), and a warning for the user, if any."""

    signer: str | None = None
    warning: str | None = None


class Trust:
    """The policy and keyring of one home, as they are when it is made."""

    def __init__(self, policy: Policy, keyring: Keyring) -> None:
        self.policy = policy
        self.keyring = keyring

    @classmethod
    def of_home(cls, home: Path) -> Trust:
        """Read ``config.toml``'s ``[policy]`` and the keyring. A config that cannot be read
        is a ConfigError: without it, what the policy allows is unknown."""
        from ..config import load_host_config

        return cls(load_host_config(home / "config.toml").policy, Keyring.load(home))

    # ------------------------------------------------------------ install

    def check_allowed(self, plugin_id: str, version: str, done: str = "installed") -> None:
        """Raise TrustError if ``[policy]`` allow or deny refuses the plugin (``done``: what
        it cannot be, for the message)."""
        refusal = self.policy.refuses(plugin_id)
        if refusal is not None:
            raise TrustError(
                f"{plugin_id} {version}",
                f"cannot be {done}: {refusal} (config.toml); nothing was changed",
            )

    def check_bundle(self, bundle: ReadBundle) -> Verdict:
        """Decide whether ``bundle`` may be installed (see the module's docstring).

        Raises TrustError when the policy refuses it and BundleError when its signature
        is damaged or does not verify; otherwise says who signed it and what to warn of.
        """
        plugin_id, label = bundle.id, f"{bundle.id} {bundle.version}"
        self.check_allowed(plugin_id, bundle.version)
        required = self.policy.requires_signature(plugin_id)
        namespace = namespace_of(plugin_id)
        if bundle.signature is None:
            if required:
                raise TrustError(
                    label,
                    f"is not signed, and [policy] require-signatures requires a signature "
                    f"{self._scope(plugin_id)}; install a bundle signed by a key trusted for "
                    f"{namespace} (plugbay build --sign KEY, or plugbay sign BUNDLE --key KEY), "
                    f"or change require-signatures in config.toml",
                )
            return Verdict()
        signature = parse_signature(bundle.signature, bundle.path)
        key = self.keyring.get(signature.key)
        if key is None:
            problem = (
                f"is signed by key {signature.key}, which is not trusted for namespace "
                f"{namespace} (it is not in the keyring)"
            )
            fix = (
                "if you trust its publisher, get their public key file and run: "
                f"plugbay key trust FILE.pub --namespace {namespace}"
            )
            if required:
                raise TrustError(label, f"{problem}; {fix}")
            return Verdict(
                warning=f"{label} {problem}: its signature was not checked, and it is "
                f"installed as unsigned ({fix})"
            )
        public = self.keyring.public_key(signature.key)
        if not verify_signature(public, signature, bundle.contents[MANIFEST_JSON]):
            raise BundleError(
                bundle.path,
                f"{SIGNATURE} does not verify with key {describe(key, signature.key)}: the "
                "bundle was changed after it was signed, or the signature was taken from "
                "another bundle; it is refused (get the bundle again from its publisher)",
            )
        if not key.may_sign(plugin_id):
            problem = (
                f"is signed by key {describe(key, signature.key)}, which is not trusted for "
                f"namespace {namespace}"
            )
            fix = f"run: plugbay key trust {signature.key} --namespace {namespace}"
            if required:
                raise TrustError(label, f"{problem}; {fix}")
            return Verdict(
                warning=f"{label} {problem}: it is installed as unsigned (if that key may "
                f"sign for {namespace}, {fix})"
            )
        return Verdict(signer=signature.key)

    def _scope(self, plugin_id: str) -> str:
        wanted = self.policy.require_signatures
        if isinstance(wanted, bool):
            return "for every plugin"
        if plugin_id in wanted:
            return f"for {plugin_id}"
        return f"for namespace {namespace_of(plugin_id)}"

    # ------------------------------------------------------------ verify

    def installed_problems(
        self, plugin_id: str, version: str, folder: Path, receipt: Receipt | None
    ) -> tuple[list[str], list[str]]:
        """An installed version's signature against the keyring and policy of now.

        Returns ``(missing, errors)``: ``[MANIFEST.json.sig]`` when the receipt records a
        signer and the file is gone, and one line per other problem.
        """
        signer = receipt.signer if receipt is not None else None
        namespace = namespace_of(plugin_id)
        if signer is None:
            if receipt is not None and self.policy.requires_signature(plugin_id):
                return [], [
                    f"it was not installed from a bundle signed by a key trusted for "
                    f"{namespace}, and [policy] require-signatures now requires one "
                    f"{self._scope(plugin_id)} (install a signed bundle of it, or remove it)"
                ]
            return [], []
        try:
            data = (folder / SIGNATURE).read_bytes()
        except FileNotFoundError:
            return [SIGNATURE], []
        except OSError as exc:
            return [], [f"{SIGNATURE} cannot be read: {exc.strerror or exc}"]
        try:
            signature = parse_signature(data, str(folder))
        except BundleError as exc:
            return [], [exc.problem]
        key = self.keyring.get(signature.key)
        if signature.key != signer:
            return [], [
                f"{SIGNATURE} names key {signature.key}, but it was installed signed by "
                f"{signer}: the signature file was replaced (reinstall it)"
            ]
        if key is None:
            return [], [
                f"it is signed by key {signer}, which is no longer in the keyring (trust it "
                f"again: plugbay key trust FILE.pub --namespace {namespace}; or remove it)"
            ]
        try:
            public = self.keyring.public_key(signer)
        except KeyringError as exc:
            return [], [str(exc)]
        try:
            manifest_json = (folder / MANIFEST_JSON).read_bytes()
        except OSError:
            return [], []  # reported already, as missing or unreadable metadata
        if not verify_signature(public, signature, manifest_json):
            return [], [
                f"{SIGNATURE} does not verify with key {describe(key, signer)}: MANIFEST.json "
                "or the signature was changed after install (reinstall it)"
            ]
        if not key.may_sign(plugin_id):
            return [], [
                f"it is signed by key {describe(key, signer)}, which is no longer trusted "
                f"for namespace {namespace} (run: plugbay key trust {signer} --namespace "
                f"{namespace}; or remove it)"
            ]
        return [], []


def signature_status(
    receipt: Receipt | None, keyring: Keyring | None
) -> tuple[str | None, TrustedKey | None]:
    """For ``list`` and ``info``: ``"signed"`` or ``"unsigned"`` as the receipt records it
    (None: not installed by the store), and the signer's keyring entry if it still has one.

    Reads no signature and imports no cryptography: ``verify`` is what checks them.
    """
    if receipt is None:
        return None, None
    if receipt.signer is None:
        return "unsigned", None
    return "signed", keyring.get(receipt.signer) if keyring is not None else None
