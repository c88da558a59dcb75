"""Dry checks of the bundle configuration on Linux, for the bundles that only a Mac can build.

`tauri build --bundles app,dmg` does not exist on Linux (the CLI offers deb, rpm and appimage
there), so this validates what a macOS bundle would use: tauri.conf.json merged with the overlay
scripts/bundle writes on a Mac (the same function), against the Tauri CLI's own JSON schema (which
rejects unknown keys); the settings the issue asks for (app + dmg, minimum macOS 14, menu-bar
agent through Info.plist's LSUIElement, signing left to the environment); and the .icns that
`tauri icon` makes from the committed PNG. The Linux overlay is validated the same way.

    python3 tests/bundle/config_check.py   (the venv's Python: jsonschema)
"""
import copy
import json
import pathlib
import plistlib
import subprocess
import sys
import tempfile

import jsonschema

root = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root / "scripts"))
import bundle_config  # noqa: E402

cli = root / "ui/node_modules/@tauri-apps/cli"
schema = json.loads((cli / "config.schema.json").read_text())
validator = jsonschema.Draft7Validator(schema)
conf = json.loads((root / "src-tauri/tauri.conf.json").read_text())


def merge(base, patch):
    """JSON merge patch (RFC 7396), as the Tauri CLI merges --config: objects merge, the rest replaces."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def check(name, config):
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)


stage, model = "/stage/debug", "/stage/debug/payload/models/tiny-llama"
mac = merge(conf, bundle_config.overlay("macos", stage, model, metallib="/stage/mlx.metallib"))
linux = merge(conf, bundle_config.overlay("linux", stage, model, depends=["libopenblas0"]))
check("tauri.conf.json", conf)
check("tauri.conf.json + macOS overlay", mac)
check("tauri.conf.json + Linux overlay", linux)
# The check can fail: the schema refuses a misspelt key.
typo = merge(mac, {"bundle": {"macOS": {"minimumSystemVersio": "14.0"}}})
assert any(True for _ in validator.iter_errors(typo)), "the schema accepted an unknown macOS key"

bundle = mac["bundle"]
assert bundle["active"] is True, "bundling is off"
assert {"app", "dmg", "deb", "appimage"} <= set(bundle["targets"]), bundle["targets"]
macos = bundle["macOS"]
assert macos["minimumSystemVersion"] == "14.0", macos
assert macos.get("signingIdentity") is None, "the signing identity comes from APPLE_SIGNING_IDENTITY, not the file"
assert set(macos["files"]) == {"MacOS/mlx.metallib"}, macos["files"]
assert bundle["externalBin"] == [f"{stage}/mlx-manager"], bundle["externalBin"]
assert any(i.endswith(".icns") for i in bundle["icon"]), bundle["icon"]

plist_path = root / "src-tauri" / macos.get("infoPlist", "Info.plist")
plist = plistlib.loads(plist_path.read_bytes())
assert plist.get("LSUIElement") is True, f"{plist_path}: LSUIElement must be true (menu-bar agent)"

# The .icns scripts/bundle makes on a Mac, made here from the committed PNG.
with tempfile.TemporaryDirectory() as out:
    subprocess.run(["node", str(cli / "tauri.js"), "icon", str(root / "src-tauri/icons/icon.png"), "-o", out],
                   check=True, capture_output=True)
    icns = pathlib.Path(out, "icon.icns").read_bytes()
    assert icns[:4] == b"icns" and len(icns) > 1000, "tauri icon made no .icns"
print("ok: bundle configuration (macOS and Linux overlays) valid against Tauri's schema")
