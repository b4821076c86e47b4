#!/usr/bin/env python3
"""Fuzzes the hub's HTTP API against its own OpenAPI document (schemathesis), once per role.

Starts `hub demo` (its own nats-server, a sample of every event type) on free ports in a temporary
directory, adds a token of every role (an integrator and a coordinator of 1280, an analyst, an
operator) and runs schemathesis over the whole document with each: every generated request, valid
or not, must get an answer the document allows (status code, body schema, content type), never a
5xx, and a request the document forbids must be refused. Exits non-zero on any finding.

    scripts/api_fuzz.py [--hub target/debug/hub] [--max-examples 25] [--seed 1] [--all-phases]

The roles run side by side, each under the hub's per-token rate limit. scripts/schemathesis.toml
holds the settings and the few exceptions (each with its reason; docs/testing.md lists them).
schemathesis is installed into .tools/fuzz (a virtualenv) when missing. scripts/test.sh runs this
after the Rust tests, bounded to a few minutes.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tools" / "fuzz"
SCHEMATHESIS = "schemathesis==4.*"
ROLES = [("analyst", None), ("operator", None), ("integrator", "1280"), ("coordinator", "1280")]


def schemathesis() -> Path:
    binary = VENV / "bin" / "schemathesis"
    if not binary.exists():
        print(f"installing {SCHEMATHESIS} into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", SCHEMATHESIS], check=True)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, token: str | None = None) -> None:
    deadline = time.monotonic() + seconds
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer 200 in {seconds:.0f} s")


def add_token(hub: str, tokens_file: Path, role: str, principal: str | None) -> str:
    command = [hub, "token", "add", "--role", role, "--tokens-file", str(tokens_file)]
    if principal:
        command += ["--principal", principal]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return output.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", default=str(ROOT / "target" / "debug" / "hub"))
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spec", default=str(ROOT / "docs" / "openapi.json"))
    parser.add_argument(
        "--all-phases",
        action="store_true",
        help="also the coverage phase of POST /api/v1/events (thousands of requests per role)",
    )
    args = parser.parse_args()
    fuzzer = schemathesis()
    work = Path(tempfile.mkdtemp(prefix="sgd-api-fuzz-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HUB_LOG_FORMAT="json")
    log = open(work / "hub.log", "w")
    hub = subprocess.Popen(
        [args.hub, "demo", "--data-dir", str(work / "data"), "--http-addr", f"127.0.0.1:{port}", "--per-type", "3", "--simulated", "2000"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    config = ROOT / "scripts" / "schemathesis.toml"
    if args.all_phases:
        text = config.read_text().replace("phases.coverage.enabled = false", "")
        config = work / "schemathesis.toml"
        config.write_text(text)
    failed = []
    try:
        wait_for(url + "/healthz", 120)
        tokens_file = work / "data" / "tokens.json"
        tokens = {role: add_token(args.hub, tokens_file, role, principal) for role, principal in ROLES}
        # The demo's sample is in the read model before anything is fuzzed.
        wait_for(url + "/readyz", 300, tokens["operator"])
        # The roles run side by side: the hub limits each token on its own (scripts/schemathesis.toml
        # keeps each under that limit), so together they take about as long as the slowest.
        runs = {}
        started = time.monotonic()
        for role, _ in ROLES:
            report = work / f"{role}.txt"
            command = [
                str(fuzzer),
                "--config-file",
                str(config),
                "run",
                args.spec,
                "--url",
                url,
                "-H",
                f"Authorization: Bearer {tokens[role]}",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--workers",
                "1",
                "--no-color",
            ]
            runs[role] = (report, subprocess.Popen(command, stdout=open(report, "w"), stderr=subprocess.STDOUT))
        for role, (report, run) in runs.items():
            returncode = run.wait()
            took = time.monotonic() - started
            lines = report.read_text().splitlines()
            cases = next((line.strip() for line in lines if "generated" in line), "")
            summary = [line for line in lines if "failure" in line or "passed" in line]
            print(f"{role}: exit {returncode} after {took:.0f} s; {cases}; {summary[-1].strip('= ') if summary else ''}")
            if returncode != 0:
                failed.append(role)
                print(report.read_text())
        if hub.poll() is not None:
            print(f"the hub stopped during the run (exit {hub.returncode}); its log: {work / 'hub.log'}")
            failed.append("hub")
    finally:
        hub.terminate()
        try:
            hub.wait(15)
        except subprocess.TimeoutExpired:
            hub.kill()
    if failed:
        print(f"API fuzzing found problems for: {', '.join(failed)} (reports and hub log in {work})")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("API fuzzing: every answer matched the OpenAPI document, no 5xx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
