"""The nutanix_image module: a disk image, present (from a source URI) or absent."""

from __future__ import annotations

from typing import Any

from .prism import ModuleError, Prism, choice, credentials, known, text

NAME = "nutanix_image"
ARGS = ("name", "source_uri", "image_type", "state")
STATES = ("present", "absent")
TYPES = ("DISK_IMAGE", "ISO_IMAGE")


class NutanixImage:
    """validate (no network), check (reads Prism), apply (acts, waits for the task)."""

    def validate(self, args: dict[str, Any]) -> None:
        known(NAME, args, ARGS)
        credentials(NAME, args)
        text(NAME, args, "name")
        if choice(NAME, args, "state", STATES) == "present":
            text(NAME, args, "source_uri")
        choice(NAME, args, "image_type", TYPES)

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        self.validate(args)
        with Prism(credentials(NAME, args)) as prism:
            image = prism.find("image", args["name"])
        change = _change(args, image)
        return {
            "changed": change is not None,
            "msg": change or f"image {args['name']} is as wanted",
            "artifacts": {"image_id": image["metadata"]["uuid"] if image else None},
        }

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        self.validate(args)
        name = args["name"]
        with Prism(credentials(NAME, args)) as prism:
            image = prism.find("image", name)
            change = _change(args, image)
            if change is None:
                return {
                    "changed": False,
                    "msg": f"image {name} is as wanted",
                    "artifacts": {
                        "image_id": image["metadata"]["uuid"] if image else None,
                        "task_id": None,
                        "status": "UNCHANGED",
                    },
                }
            spec = {
                "name": name,
                "resources": {
                    "image_type": args.get("image_type", TYPES[0]),
                    "source_uri": args.get("source_uri"),
                },
            }
            if image is None:
                answer = prism.call(
                    "POST", "/images", {"spec": spec, "metadata": {"kind": "image"}}
                )
            elif args.get("state", "present") == "absent":
                answer = prism.call("DELETE", f"/images/{image['metadata']['uuid']}")
            else:
                body = {"spec": spec, "metadata": image["metadata"]}
                answer = prism.call("PUT", f"/images/{image['metadata']['uuid']}", body)
            task_id = answer["status"]["execution_context"]["task_uuid"]
            status = prism.wait(task_id)
        image_id = answer["metadata"]["uuid"]
        gone = args.get("state", "present") == "absent"
        return {
            "changed": True,
            "msg": change.replace("would ", "", 1) + f" (task {task_id})",
            "artifacts": {
                "image_id": None if gone else image_id,
                "task_id": task_id,
                "status": status,
            },
        }


def _change(args: dict[str, Any], image: dict[str, Any] | None) -> str | None:
    """What apply would do, as ``would …``; None when the image is as wanted."""
    name = args["name"]
    if args.get("state", "present") == "absent":
        return f"would delete image {name}" if image is not None else None
    if image is None:
        return f"would create image {name} from {args['source_uri']}"
    if image["status"].get("state") not in ("COMPLETE", None):
        raise ModuleError(f"image {name} is {image['status']['state']}; run again once it is done")
    resources = image["spec"]["resources"]
    wanted = (args["source_uri"], args.get("image_type", TYPES[0]))
    if (resources.get("source_uri"), resources.get("image_type")) != wanted:
        return f"would update image {name} to {args['source_uri']}"
    return None
