"""A plugin child speaking the plugbay protocol by hand (json only), for the exec tests.

Flags (argv) change how it starts and stops; the methods of its module (named like the
plugin) misbehave
on request. It appends its pid to ``pids`` in its working folder (the plugin folder).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

FLAGS = set(sys.argv[1:])
# Contributions are named after the plugin, so that several plugins never collide.
NAME = os.environ.get("PLUGBAY_PLUGIN_ID", "").rpartition(".")[2]
OUT = sys.stdout.buffer
OUT_LOCK = threading.Lock()
CANCELS = {}
CANCELLED = set()
ORDER = []


def send(message):
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    with OUT_LOCK:
        OUT.write(data)
        OUT.flush()


def answer(rid, result):
    send({"jsonrpc": "2.0", "id": rid, "result": result})


def fail(rid, code, message, data=None):
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    send({"jsonrpc": "2.0", "id": rid, "error": error})


def main():
    with open("pids", "a") as f:
        f.write(f"{os.getpid()}\n")
    if "--exit-before-ready" in FLAGS:
        print("dying early: no configuration", file=sys.stderr, flush=True)
        sys.exit(3)
    if "--no-ready" in FLAGS:
        time.sleep(60)
    if "--garbage-first" in FLAGS:
        OUT.write(b"Hello from a plugin that prints\n")
        OUT.flush()
        time.sleep(60)
    if "--ignore-shutdown" in FLAGS:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    offered = os.environ["PLUGBAY_PROTOCOL_VERSIONS"].split(",")
    version = 2 if "--protocol-2" in FLAGS else int(offered[-1])
    cookie = "not-the-cookie" if "--wrong-cookie" in FLAGS else os.environ["PLUGBAY_COOKIE"]
    plugin_id = "someone.else" if "--wrong-id" in FLAGS else os.environ["PLUGBAY_PLUGIN_ID"]
    send(
        {
            "jsonrpc": "2.0",
            "method": "plugbay/ready",
            "params": {
                "protocol": version,
                "cookie": cookie,
                "plugin": {"id": plugin_id, "version": "1.0.0"},
                "contributions": {
                    "module": [{"name": NAME, "methods": METHODS}],
                    "hook": [{"name": "on_task"}],
                    "command": [{"name": f"{NAME}-count"}],
                    "tool": [{"name": f"{NAME}_extra"}],
                },
            },
        }
    )
    for raw in sys.stdin.buffer:
        message = json.loads(raw)
        method = message.get("method")
        if method == "$/cancel":
            rid = message["params"]["id"]
            CANCELLED.add(rid)
            event = CANCELS.get(rid)
            if event is not None and "--ignore-cancel" not in FLAGS:
                event.set()
            continue
        if "id" not in message:
            continue
        if method == "invoke":
            CANCELS[message["id"]] = threading.Event()
            threading.Thread(target=invoke, args=(message,), daemon=True).start()
        elif method == "initialize":
            if "--init-error" in FLAGS:
                fail(message["id"], -32002, "cannot initialise: token refused")
            else:
                CONFIG.update(message["params"]["config"])
                answer(message["id"], {})
        elif method == "health":
            answer(message["id"], {"status": "degraded", "detail": "tired but working"})
        elif method == "shutdown":
            if "--ignore-shutdown" in FLAGS:
                continue
            answer(message["id"], {})
            os._exit(0)
        else:
            fail(message["id"], -32601, f"no method {method}")
    if "--ignore-shutdown" in FLAGS:
        time.sleep(60)


CONFIG = {}
METHODS = [
    "echo",
    "wait",
    "sleep",
    "exit",
    "exit_soon",
    "signal",
    "garbage",
    "partial",
    "huge",
    "close_stdout",
    "flood",
    "fork",
    "env",
    "cwd",
    "pid",
    "notify",
    "boom",
    "config",
    "limits",
    "cancels",
]


def invoke(message):
    rid = message["id"]
    params = message["params"]
    target, method = params["contribution"], params["method"]
    args, kwargs = params["args"], params["kwargs"]
    if target == "hook:on_task":
        answer(rid, {"seen": kwargs})
        return
    if target == f"command:{NAME}-count":
        answer(rid, len(args[0]))
        return
    if target == f"tool:{NAME}_extra":
        answer(rid, f"extra {method}")
        return
    if target != f"module:{NAME}":
        fail(rid, -32001, f"no contribution {target}")
        return
    if method == "echo":
        answer(rid, {"args": args, "kwargs": kwargs})
    elif method == "wait":  # answers after args[0] seconds, saying in which order
        time.sleep(args[0])
        with OUT_LOCK:
            ORDER.append(args[0])
            position = len(ORDER)
        answer(rid, {"waited": args[0], "position": position})
    elif method == "sleep":  # until cancelled (or for ever, with --ignore-cancel)
        CANCELS[rid].wait(60)
        fail(rid, -32800, "cancelled")
    elif method == "exit":
        print(f"exiting with {args[0]} on request", file=sys.stderr, flush=True)
        os._exit(args[0])
    elif method == "exit_soon":
        answer(rid, "bye")
        time.sleep(0.05)
        os._exit(5)
    elif method == "signal":
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)
    elif method == "garbage":
        with OUT_LOCK:
            OUT.write(b"Traceback? no: just a stray print\n")
            OUT.flush()
        time.sleep(60)
    elif method == "partial":
        with OUT_LOCK:
            OUT.write(b'{"jsonrpc":"2.0","id":')
            OUT.flush()
        os._exit(0)
    elif method == "huge":  # one line of args[0] bytes, written in 1 MiB pieces
        piece = b"x" * (1024 * 1024)
        with OUT_LOCK:
            for _ in range(args[0] // len(piece)):
                OUT.write(piece)
            OUT.write(b"\n")
            OUT.flush()
    elif method == "close_stdout":
        with OUT_LOCK:
            OUT.flush()
            os.close(1)
        time.sleep(60)
    elif method == "flood":  # args[0] bytes of stderr, then an answer
        line = "flood " + "y" * 93 + "\n"
        sys.stderr.write(line * (args[0] // len(line)))
        sys.stderr.flush()
        answer(rid, "flooded")
    elif method == "fork":  # grandchildren, in the child's process group
        kids = [
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            for _ in range(args[0])
        ]
        answer(rid, [k.pid for k in kids])
    elif method == "env":
        answer(rid, dict(os.environ))
    elif method == "cwd":
        answer(rid, os.getcwd())
    elif method == "pid":
        answer(rid, os.getpid())
    elif method == "notify":
        send(
            {
                "jsonrpc": "2.0",
                "method": "log",
                "params": {
                    "level": "warning",
                    "message": "disk nearly full",
                    "fields": {"free": 3},
                },
            }
        )
        send(
            {
                "jsonrpc": "2.0",
                "method": "event",
                "params": {"name": "vm.created", "data": {"vm": "web-1"}},
            }
        )
        answer(rid, "notified")
    elif method == "boom":
        fail(
            rid,
            -32002,
            "the VM is on fire",
            {"type": "ValueError", "traceback": "Traceback (most recent call last):\n  ..."},
        )
    elif method == "config":
        answer(rid, CONFIG)
    elif method == "limits":
        import resource

        answer(
            rid, [resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_AS)]
        )
    elif method == "cancels":
        answer(rid, sorted(CANCELLED))
    else:
        fail(rid, -32001, f"no method {method}")


if __name__ == "__main__":
    main()
