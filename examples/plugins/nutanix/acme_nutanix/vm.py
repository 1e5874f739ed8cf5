"""The nutanix_vm module: a VM, present with its size and power state, or absent."""

from __future__ import annotations

from typing import Any

from .prism import ModuleError, Prism, choice, credentials, known, number, text

NAME = "nutanix_vm"
ARGS = ("name", "state", "vcpus", "memory_mib", "image", "image_id")
STATES = ("present", "powered_on", "powered_off", "absent")


class NutanixVm:
    """validate (no network), check (reads Prism), apply (acts, waits for the task)."""

    def validate(self, args: dict[str, Any]) -> None:
        known(NAME, args, ARGS)
        credentials(NAME, args)
        text(NAME, args, "name")
        choice(NAME, args, "state", STATES)
        number(NAME, args, "vcpus", 1)
        number(NAME, args, "memory_mib", 1024)
        if "image" in args and "image_id" in args:
            raise ModuleError(f"{NAME}: give `image` (a name) or `image_id`, not both")
        for key in ("image", "image_id"):
            if key in args:
                text(NAME, args, key)

    def check(self, args: dict[str, Any]) -> dict[str, Any]:
        self.validate(args)
        with Prism(credentials(NAME, args)) as prism:
            vm = prism.find("vm", args["name"])
            plan = _plan(prism, args, vm, checking=True)
        return {
            "changed": plan is not None,
            "msg": plan[0] if plan else f"VM {args['name']} is as wanted",
            "artifacts": _artifacts(vm),
        }

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        self.validate(args)
        name = args["name"]
        with Prism(credentials(NAME, args)) as prism:
            vm = prism.find("vm", name)
            plan = _plan(prism, args, vm, checking=False)
            if plan is None:
                return {
                    "changed": False,
                    "msg": f"VM {name} is as wanted",
                    "artifacts": {**_artifacts(vm), "task_id": None, "status": "UNCHANGED"},
                }
            what, method, path, body = plan
            answer = prism.call(method, path, body)
            task_id = answer["status"]["execution_context"]["task_uuid"]
            status = prism.wait(task_id)
            after = (
                None
                if method == "DELETE"
                else prism.call("GET", f"/vms/{answer['metadata']['uuid']}")
            )
        return {
            "changed": True,
            "msg": what.replace("would ", "", 1) + f" (task {task_id})",
            "artifacts": {**_artifacts(after), "task_id": task_id, "status": status},
        }


def _artifacts(vm: dict[str, Any] | None) -> dict[str, Any]:
    if vm is None:
        return {"vm_id": None, "power_state": None}
    return {
        "vm_id": vm["metadata"]["uuid"],
        "power_state": vm["spec"]["resources"].get("power_state"),
    }


def _plan(
    prism: Prism, args: dict[str, Any], vm: dict[str, Any] | None, *, checking: bool
) -> tuple[str, str, str, dict[str, Any] | None] | None:
    """(what, method, path, body) of the one request that makes the VM as wanted, or None."""
    name = args["name"]
    state = args.get("state", "present")
    if state == "absent":
        if vm is None:
            return None
        return (f"would delete VM {name}", "DELETE", f"/vms/{vm['metadata']['uuid']}", None)
    vcpus = number(NAME, args, "vcpus", 1)
    memory = number(NAME, args, "memory_mib", 1024)
    if vm is None:
        power = "OFF" if state == "powered_off" else "ON"
        disks, source = _disks(prism, args, checking=checking)
        resources = {
            "num_sockets": vcpus,
            "num_vcpus_per_socket": 1,
            "memory_size_mib": memory,
            "power_state": power,
            "disk_list": disks,
        }
        body = {"spec": {"name": name, "resources": resources}, "metadata": {"kind": "vm"}}
        what = f"would create VM {name} ({vcpus} vCPU, {memory} MiB, power {power}{source})"
        return (what, "POST", "/vms", body)
    if vm["status"].get("state") != "COMPLETE":
        raise ModuleError(f"VM {name} is {vm['status'].get('state')}; run again once it is done")
    current = vm["spec"]["resources"]
    wanted = dict(current, num_sockets=vcpus, memory_size_mib=memory)
    if state in ("powered_on", "powered_off"):
        wanted["power_state"] = "ON" if state == "powered_on" else "OFF"
    changes = [
        f"{label} {current.get(key)} -> {wanted[key]}"
        for key, label in (
            ("num_sockets", "vCPU"),
            ("memory_size_mib", "MiB"),
            ("power_state", "power"),
        )
        if current.get(key) != wanted[key]
    ]
    if not changes:
        return None
    body = {"spec": {"name": name, "resources": wanted}, "metadata": vm["metadata"]}
    what = f"would update VM {name}: {', '.join(changes)}"
    return (what, "PUT", f"/vms/{vm['metadata']['uuid']}", body)


def _disks(
    prism: Prism, args: dict[str, Any], *, checking: bool
) -> tuple[list[dict[str, Any]], str]:
    """The new VM's disk list (one disk cloned from the image, if one is named)."""
    image_id = args.get("image_id")
    label = f", disk from image {image_id}" if image_id else ""
    if "image" in args:
        image = prism.find("image", args["image"])
        label = f", disk from image {args['image']}"
        if image is None:
            if checking:  # an earlier task of the play may create it
                return [], label + " (not there yet)"
            raise ModuleError(f"{NAME}: there is no image named {args['image']!r} in Prism")
        image_id = image["metadata"]["uuid"]
    if image_id is None:
        return [], label
    ref = {"kind": "image", "uuid": image_id}
    return [{"device_properties": {"device_type": "DISK"}, "data_source_reference": ref}], label
