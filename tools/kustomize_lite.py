"""Render a kustomization offline, the subset deploy/k8s uses, and schema-check every object.

    python tools/kustomize_lite.py deploy/k8s/overlays/production            # YAML to stdout
    python tools/kustomize_lite.py deploy/k8s/overlays/production --validate  # + schema check

``kubectl apply -k`` (or ``kustomize build``) is what you deploy with; this exists
so tests can render and validate the manifests without a cluster, a kustomize
binary or the network. It understands ``resources`` (files and directories),
``namespace``, ``labels``, ``images``, ``replicas`` and ``patches`` (strategic
merge: maps merge, lists of named items merge by ``name``, other lists are
replaced, ``$patch: delete`` removes a named item). Any other kustomization key
is refused rather than ignored, so the subset cannot silently diverge from
what kustomize would do. Validation uses the Kubernetes JSON schemas shipped in
the ``kubernetes-validate`` wheel (strict: unknown fields fail).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.33.0"
SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}

Obj = dict[str, Any]


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not do, or refers to nothing."""


def _documents(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def render(directory: Path) -> list[Obj]:
    """The objects ``directory``'s kustomization.yaml describes, transformed like kustomize."""
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    spec: Obj = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")

    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects += render(target)
        elif target.is_file():
            objects += _documents(target)
        else:
            raise KustomizeError(f"{kfile}: resource {entry} not found")
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        if _key(obj) in seen:
            raise KustomizeError(f"{kfile}: {obj['kind']}/{obj['metadata']['name']} twice")
        seen.add(_key(obj))

    for patch in spec.get("patches", []):
        _apply_patch(objects, patch, directory)
    for item in spec.get("replicas", []):
        matched = [
            o for o in objects if o["metadata"]["name"] == item["name"] and o["kind"] in SCALABLE
        ]
        if not matched:
            raise KustomizeError(f"{kfile}: replicas for unknown {item['name']}")
        for obj in matched:
            obj["spec"]["replicas"] = item["count"]
    for label in spec.get("labels", []):
        _add_labels(
            objects,
            label["pairs"],
            selectors=label.get("includeSelectors", False),
            templates=label.get("includeTemplates", False),
        )
    for image in spec.get("images", []):
        _set_image(objects, image)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _apply_patch(objects: list[Obj], patch: Obj, directory: Path) -> None:
    if "path" in patch:
        body = _documents(directory / patch["path"])
    elif "patch" in patch:
        body = [d for d in yaml.safe_load_all(patch["patch"]) if d]
    else:
        raise KustomizeError(f"patch without path or patch: {patch}")
    target = patch.get("target")
    for part in body:
        if target is not None:
            matched = [
                o
                for o in objects
                if o["kind"] == target.get("kind", o["kind"])
                and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])
            ]
        else:
            matched = [o for o in objects if _key(o) == _key(part)]
        if not matched:
            raise KustomizeError(f"patch matches nothing: {target or _key(part)}")
        for obj in matched:
            merged = merge(obj, {k: v for k, v in part.items() if k not in ("apiVersion",)})
            obj.clear()
            obj.update(merged)


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge of ``patch`` into ``base`` (a copy): the rules in the module docstring."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if key in out and value is not None:
                out[key] = merge(out[key], value)
            elif value is None:
                out.pop(key, None)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        out_list = copy.deepcopy(base)
        for item in patch:
            index = next((i for i, b in enumerate(out_list) if b["name"] == item["name"]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    out_list.pop(index)
            elif index is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[index] = merge(out_list[index], item)
        return out_list
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _pod_templates(obj: Obj) -> Iterable[Obj]:
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        yield template


def _add_labels(
    objects: list[Obj], pairs: dict[str, str], *, selectors: bool, templates: bool
) -> None:
    """kustomize ``labels``: metadata always; pod templates only with ``includeTemplates``."""
    if selectors:
        raise KustomizeError("labels with includeSelectors: true are not supported")
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if templates:
            for template in _pod_templates(obj):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_image(objects: list[Obj], image: Obj) -> None:
    for obj in objects:
        for template in _pod_templates(obj):
            pod = template["spec"]
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, _tag = container["image"].partition(":")
                if name != image["name"]:
                    continue
                new = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{new}@{image['digest']}"
                else:
                    container["image"] = f"{new}:{image.get('newTag', _tag or 'latest')}"


def validate(objects: Iterable[Obj], version: str = KUBERNETES_VERSION) -> list[str]:
    """Schema errors, one line per object that fails (strict: unknown fields are errors)."""
    import kubernetes_validate

    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--validate", action="store_true", help="schema-check every object")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    ns = parser.parse_args(argv)
    objects = render(ns.directory)
    if ns.validate:
        errors = validate(objects, ns.kubernetes_version)
        for error in errors:
            print(error, file=sys.stderr)
        if errors:
            return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
