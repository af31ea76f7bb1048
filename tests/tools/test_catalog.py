"""The catalog (pwa/py/tejas/schemas/catalog.json: modes, architectures, feature sizes, max classes) is the one
list, and everything that names them agrees with it: the exporter's torch modules give the feature sizes it
states, the browser's reading of it (pwa/features/catalog.js, in Node) gives what the core's does, and the
artifact manifest's schema and the server's job API accept exactly its architectures and modes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from tejas.artifacts import SCHEMA_PATH
from tejas.catalog import (
    APP_MODES,
    ARCHITECTURES,
    CATALOG,
    IMAGE_BACKBONES,
    MAX_CLASSES,
    MODES,
    TEXT_ENCODER,
    TEXT_MODES,
    feature_size,
    modes_for,
)

ROOT = Path(__file__).resolve().parents[2]
WHERE = ("app", "trainer")
MODALITIES = ("image", "text")


def test_the_catalog_is_well_formed():
    modalities = {a["modality"] for a in ARCHITECTURES.values()}
    assert modalities == set(MODALITIES)
    assert MODES == ("head", "last_block", "full") and APP_MODES == ("head", "last_block") and TEXT_MODES == ("full",)
    for mode, entry in CATALOG["modes"].items():
        assert set(entry) == {"label", *WHERE}, mode
        assert set(entry["app"]) | set(entry["trainer"]) <= set(MODALITIES), mode
    for name, entry in ARCHITECTURES.items():
        assert isinstance(entry["feature_size"], int) and entry["feature_size"] > 0, name
        assert ("default_input_size" in entry) == (entry["modality"] == "image"), name
    assert isinstance(MAX_CLASSES, int) and MAX_CLASSES >= 2


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_image_feature_sizes_are_what_the_exporters_modules_produce(name):
    from tejas_ml.export.backbones import BACKBONES
    from tejas_ml.export.models import FeatureExtractor

    backbone = BACKBONES[name]
    assert (backbone.name, backbone.feature_size) == (name, feature_size(name))
    trunk, last_block, classifier = backbone.split(backbone.build().eval())
    with torch.no_grad():
        features = FeatureExtractor(trunk, last_block)(torch.zeros(2, 3, 64, 64))
    assert tuple(features.shape) == (2, feature_size(name))
    assert classifier.in_features == feature_size(name)  # what the ImageNet classifier was fed


def test_the_exporter_builds_exactly_the_catalogs_image_backbones():
    from tejas_ml.export.backbones import BACKBONES

    assert tuple(BACKBONES) == IMAGE_BACKBONES


def test_the_text_feature_size_is_what_the_exporters_encoder_produces():
    from tejas_ml.export.models import make_head
    from tejas_ml.export.text import ARCHITECTURE, FEATURE_SIZE, find_text_model, load_encoder

    assert (ARCHITECTURE, FEATURE_SIZE) == (TEXT_ENCODER, feature_size(TEXT_ENCODER))
    encoder = load_encoder(find_text_model())
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        features = encoder(ids, torch.ones_like(ids))
    assert tuple(features.shape) == (1, feature_size(TEXT_ENCODER))
    assert make_head(feature_size(TEXT_ENCODER), MAX_CLASSES, 0).fc.in_features == feature_size(TEXT_ENCODER)


def _js_reading() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: the README's test command installs Node.js")
    script = f"""
const c = await import({json.dumps((ROOT / "pwa" / "features" / "catalog.js").as_uri())});
const out = {{modes: {{}}, labels: {{}}, architectures: {{}}, sizes: {{}}, max_classes: c.CATALOG.max_classes}};
for (const where of {json.dumps(WHERE)}) {{
  for (const m of {json.dumps(MODALITIES)}) out.modes[`${{where}}/${{m}}`] = c.modesFor(where, m);
}}
for (const mode of Object.keys(c.CATALOG.modes)) out.labels[mode] = c.modeLabel(mode);
for (const name of Object.keys(c.CATALOG.architectures)) {{
  out.architectures[name] = c.architectureLabel(name);
  out.sizes[name] = c.CATALOG.architectures[name].feature_size;
}}
out.unknown = [c.modeLabel('nope'), c.architectureLabel('resnet50')];
console.log(JSON.stringify(out));
"""
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_browser_reads_the_catalog_as_the_core_does():
    js = _js_reading()
    assert js["modes"] == {f"{where}/{m}": list(modes_for(where, m)) for where in WHERE for m in MODALITIES}
    assert js["labels"] == {mode: entry["label"] for mode, entry in CATALOG["modes"].items()}
    assert js["architectures"] == {name: a["label"] for name, a in ARCHITECTURES.items()}
    assert js["sizes"] == {name: feature_size(name) for name in ARCHITECTURES}
    assert js["max_classes"] == MAX_CLASSES
    assert js["unknown"] == ["nope", "resnet50"]


def test_the_manifest_schema_names_the_catalogs_architectures():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    enums = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("architecture"), dict) and "enum" in node["architecture"]:
                enums.append(node["architecture"]["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert enums and all(enum == list(ARCHITECTURES) for enum in enums)
    text = next(
        branch["then"]["properties"]
        for branch in schema["allOf"]
        if branch.get("then", {}).get("properties", {}).get("architecture", {}).get("const") == TEXT_ENCODER
    )
    assert text["feature_size"] == {"const": feature_size(TEXT_ENCODER)}


def test_the_default_limits_and_export_take_the_catalogs_max_classes():
    from tejas.limits import DEFAULT_LIMITS
    from tejas_ml.export.cli import build_parser

    assert DEFAULT_LIMITS.max_classes == MAX_CLASSES
    args = build_parser().parse_args([])
    assert args.max_classes == MAX_CLASSES
    assert build_parser().parse_args(["--train", "last-block"]).train == "last-block"


def test_the_server_job_api_accepts_the_catalogs_modes_and_backbones():
    from sync_server.main import create_app

    seen = {"mode": [], "backbone": []}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in seen and isinstance(value, dict) and "enum" in value:
                    seen[key].append(value["enum"])
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(create_app().openapi())
    assert seen["mode"] and all(enum == list(MODES) for enum in seen["mode"])
    assert seen["backbone"] and all(enum == ["auto", *IMAGE_BACKBONES] for enum in seen["backbone"])
