"""The per-build part of the Tauri bundle configuration, merged over src-tauri/tauri.conf.json.

Why a separate file: what a bundle carries besides the app binary (the CLI, libmlx, the tiny
model, the Metal library, generated icons) lives at paths known only at bundle time, so
scripts/bundle writes them here as a `--config` overlay; tests/bundle/config_check.py builds the
macOS overlay with the same function on Linux and validates the merged result against Tauri's
schema, the closest to a macOS bundle that can be checked without a Mac.

    python3 scripts/bundle_config.py linux OUT.json --stage DIR --model DIR --depends PKG...
    python3 scripts/bundle_config.py macos OUT.json --stage DIR --model DIR --metallib FILE
"""
import argparse
import json


def overlay(platform, stage, model, depends=(), metallib=None):
    """The overlay as a dict; `stage` holds the staged binaries and payload/."""
    resources = {model.rstrip("/") + "/": "models/tiny-llama/"}
    # The CLI (`mlx-manager serve` answers headless) as Tauri's "external binary": Tauri adds the
    # target triple to this path, installs it next to the app (/usr/bin, Contents/MacOS) as
    # `mlx-manager`, and signs it with the app on macOS.
    cli = [f"{stage}/mlx-manager"]
    if platform == "macos":
        return {"bundle": {
            # tauri icon's output from icons/icon.png (.icns included).
            "icon": [f"{stage}/payload/icons/icon.icns", f"{stage}/payload/icons/icon.png"],
            "resources": resources,
            "externalBin": cli,
            # MLX loads mlx.metallib from the executable's folder first (Contents/MacOS).
            "macOS": {"files": {"MacOS/mlx.metallib": metallib}},
        }}
    files = {"/usr/lib/mlx-manager/libmlx.so": f"{stage}/payload/lib/libmlx.so"}
    return {"bundle": {
        "resources": resources,
        "externalBin": cli,
        "linux": {"deb": {"depends": list(depends), "files": files},
                  "appimage": {"files": files}},
    }}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("platform", choices=["linux", "macos"])
    p.add_argument("out")
    p.add_argument("--stage", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--metallib")
    p.add_argument("--depends", nargs="*", default=[])
    a = p.parse_args()
    with open(a.out, "w") as f:
        json.dump(overlay(a.platform, a.stage, a.model, a.depends, a.metallib), f, indent=1)


if __name__ == "__main__":
    main()
