#!/usr/bin/env python
"""`warmcv serve` under a bounded, mixed load on 127.0.0.1, with clients stalled mid-body throughout.

It trains a small model with the CLI (`warmcv prepare`, `warmcv fit`) unless --model-dir is given,
starts `warmcv serve` on 127.0.0.1 (payload limit 1 MB, so over-limit requests are cheap to make), and
then, at the same time:

  - opens `--stalled` connections that each send a Content-Length and part of the body, then stop
    (held open until the end: the clients that used to take every request thread);
  - pings /ping every 50 ms from one thread and records the slowest answer (SageMaker allows 2 s);
  - runs `--threads` client threads of `--requests` requests each, a seeded mix of good and bad:
    CSV with and without a header, JSON Lines objects (some `{}`) and arrays, chunked bodies under and
    over the limit, and bodies that must be refused (wrong columns, non-numbers, bad or deeply nested
    JSON, unknown types, over the limit). Every answer is checked: its status, and for a 200 one output
    line per input row.

It prints p50/p99 latency of the requests, the count per status, the count of 5xx, the wrong answers,
and the slowest /ping; it exits 1 unless there is no 5xx, no wrong answer and every ping took < 2 s.
Latencies depend on what else runs on the machine; the pass/fail part does not.

    python bench/serve_load.py                      # 8 threads x 200 requests, 6 stalled clients
    python bench/serve_load.py --threads 2 --requests 20 --json out.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PING_LIMIT_SECONDS = 2.0  # SageMaker's rule for /ping
PAYLOAD_LIMIT_MB = 1
REQUEST_TIMEOUT_SECONDS = 30  # a request not answered by then counts as a wrong answer


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    headers: dict[str, str]
    expect_status: int
    expect_lines: int | None = None  # output lines of a 200
    chunked: bool = False


@dataclass
class Result:
    kind: str
    status: int
    seconds: float
    problem: str | None = None


@dataclass
class Report:
    requests: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    server_errors: int = 0
    wrong_answers: list[str] = field(default_factory=list)
    pings: int = 0
    ping_failures: int = 0
    worst_ping_seconds: float = 0.0
    stalled_clients: int = 0
    stalled_still_open: int = 0

    @property
    def passed(self) -> bool:
        return (self.server_errors == 0 and not self.wrong_answers and self.ping_failures == 0
                and self.worst_ping_seconds < PING_LIMIT_SECONDS)


def run(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "warmcv", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"warmcv {' '.join(args)} failed:\n{done.stderr}")


def train_model(work: Path, env: dict[str, str]) -> Path:
    from warmcv.examples import make_census_like

    make_census_like(rows=3000, seed=7).to_csv(work / "train.csv", index=False)
    run("prepare", "--data", str(work / "train.csv"), "--target", "income", "--out", str(work / "prepared"),
        "--folds", "3", env=env)
    run("fit", "--prepared", str(work / "prepared"), "--out", str(work / "model"), "--set", "num_boost_round=50",
        env=env)
    return work / "model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            chunked: bool = False, timeout: float = 60) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunked:
            connection.putrequest(method, path)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            try:
                for start in range(0, len(body), 65536):
                    part = body[start:start + 65536]
                    connection.send(b"%x\r\n%s\r\n" % (len(part), part))
                connection.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-body: the answer is already on its way
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def make_cases(rows, features: list[str], seed: int) -> list[Case]:
    """One of every kind; `rows` are raw census-like rows (target included)."""
    rng = random.Random(seed)
    n = rng.randint(1, 200)
    sample = rows.sample(n, random_state=rng.randint(0, 10**6))
    csv = {"Content-Type": "text/csv"}
    jsonl = {"Content-Type": "application/jsonlines"}
    records = [json.loads(line) for line in sample[features].to_json(orient="records", lines=True).splitlines()]
    with_empty = [record if i % 5 else {} for i, record in enumerate(records)]
    one = rows[features].to_csv(index=False, header=False).encode()
    over_limit = one * (PAYLOAD_LIMIT_MB * 1024 * 1024 * 3 // (2 * len(one)) + 1)  # 1.5 times the limit
    return [
        Case("csv headerless", sample[features].to_csv(index=False, header=False).encode(), csv, 200, n),
        Case("csv header + target, shuffled", sample[rng.sample(list(sample.columns), len(sample.columns))]
             .to_csv(index=False).encode(), {**csv, "Accept": "text/csv; output=labels"}, 200, n),
        Case("jsonl objects, some {}", "".join(json.dumps(r) + "\n" for r in with_empty).encode(),
             {**jsonl, "Accept": "application/jsonlines"}, 200, n),
        Case("jsonl arrays", "".join(json.dumps([r.get(f) for f in features]) + "\n" for r in records).encode(),
             jsonl, 200, n),
        Case("csv chunked under the limit", sample[features].to_csv(index=False, header=False).encode(), csv, 200, n,
             chunked=True),
        Case("bad: csv wrong column count", b"39,Private,HS-grad\n", csv, 400),
        Case("bad: csv non-number", sample[features].head(3).assign(age="forty").to_csv(index=False).encode(), csv,
             400),
        Case("bad: invalid json", b'{"age": 30}\n{"age": \n', jsonl, 400),
        Case("bad: deeply nested json", b"[" * 100_000 + b"]" * 100_000 + b"\n", jsonl, 400),
        Case("bad: empty body", b"", csv, 400),
        Case("bad: unsupported type", b"{}", {"Content-Type": "application/x-protobuf"}, 415),
        Case("bad: unacceptable accept", b"1\n", {**csv, "Accept": "application/x-recordio-protobuf"}, 406),
        Case("bad: over the limit", over_limit, csv, 413),
        Case("bad: chunked over the limit", over_limit, csv, 413, chunked=True),
    ]


def client(port: int, cases: list[Case], count: int, seed: int, results: list[Result]) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        case = rng.choice(cases)
        started = time.monotonic()
        try:
            status, body = request(port, "POST", "/invocations", case.body, case.headers, case.chunked,
                                   timeout=REQUEST_TIMEOUT_SECONDS)
        except OSError as error:
            results.append(Result(case.kind, 0, time.monotonic() - started, f"{type(error).__name__}: {error}"))
            continue
        seconds = time.monotonic() - started
        problem = None
        if status != case.expect_status:
            problem = f"status {status}, expected {case.expect_status}: {body[:200]!r}"
        elif status == 200 and body.count(b"\n") != case.expect_lines:
            lines = body.count(b"\n")
            problem = f"{lines} output lines for {case.expect_lines} rows"
        results.append(Result(case.kind, status, seconds, problem))


def stall(port: int) -> socket.socket:
    """A client that sends a Content-Length and part of the body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
                 b"Content-Length: 100000\r\n\r\n39,Private,HS-grad,")
    return sock


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither answered nor closed this connection."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True  # nothing to read
    except OSError:
        return False
    else:
        return False  # an answer, or the end of the stream
    finally:
        sock.setblocking(True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def load_test(model_dir: Path, threads: int, requests: int, stalled: int, seed: int, env: dict[str, str],
              log_path: Path) -> Report:
    from warmcv.examples import make_census_like

    features = [f["name"] for f in json.loads((model_dir / "model.json").read_text())["features"]]
    rows = make_census_like(rows=1000, seed=seed + 1)
    cases = make_cases(rows, features, seed)
    port = free_port()
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server's event loop.
    log_file = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "warmcv", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
         "--port", str(port)],
        # The longest body timeout: the stalled clients stay stalled for the whole run, never answered 408.
        env={**env, "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(PAYLOAD_LIMIT_MB), "WARMCV_SERVE_BODY_TIMEOUT": "3600"},
        stdout=log_file, stderr=subprocess.STDOUT, text=True)
    report = Report(stalled_clients=stalled)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"warmcv serve exited:\n{log_path.read_text()}")
            try:
                if request(port, "GET", "/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("warmcv serve did not answer /ping within 120 s")
            time.sleep(0.1)
        stalled_sockets = [stall(port) for _ in range(stalled)]
        time.sleep(0.5)  # let them reach the server before the load starts
        stop = threading.Event()
        pings: list[float] = []

        def ping_loop() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    ok = request(port, "GET", "/ping", timeout=10)[0] == 200
                except OSError:
                    ok = False
                pings.append(time.monotonic() - started if ok else float("inf"))
                stop.wait(0.05)

        pinger = threading.Thread(target=ping_loop, daemon=True)
        pinger.start()
        results: list[Result] = []
        clients = [threading.Thread(target=client, args=(port, cases, requests, seed * 1000 + i, results))
                   for i in range(threads)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        stop.set()
        pinger.join()
        report.stalled_still_open = sum(still_open(s) for s in stalled_sockets)
        for sock in stalled_sockets:
            sock.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()
    latencies = [r.seconds for r in results]
    report.requests = len(results)
    report.p50_ms = 1000 * percentile(latencies, 0.50)
    report.p99_ms = 1000 * percentile(latencies, 0.99)
    report.statuses = {str(k): v for k, v in sorted(Counter(r.status for r in results).items())}
    report.server_errors = sum(1 for r in results if r.status >= 500)
    report.wrong_answers = [f"{r.kind}: {r.problem}" for r in results if r.problem]
    report.pings = len(pings)
    report.ping_failures = sum(1 for p in pings if p == float("inf"))
    report.worst_ping_seconds = max((p for p in pings if p != float("inf")), default=0.0)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--requests", type=int, default=200, help="requests per client thread (default 200)")
    parser.add_argument("--stalled", type=int, default=6, help="clients stalled mid-body throughout (default 6)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model-dir", type=Path, help="a model folder (default: train a small one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO / "container_src"), os.environ.get("PYTHONPATH", "")) if p)}
    sys.path.insert(0, str(REPO / "container_src"))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as work:
        model_dir = args.model_dir or train_model(Path(work), env)
        report = load_test(model_dir, args.threads, args.requests, args.stalled, args.seed, env,
                           Path(work) / "serve.log")
        if not report.passed:
            print("server log (last 40 lines):\n" + "\n".join(
                (Path(work) / "serve.log").read_text().splitlines()[-40:]))
    print(f"requests: {report.requests} ({args.threads} threads x {args.requests}), "
          f"{report.stalled_clients} clients stalled mid-body throughout "
          f"({report.stalled_still_open} still open at the end)")
    print(f"latency: p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms")
    print(f"statuses: {report.statuses}")
    print(f"5xx: {report.server_errors}")
    print(f"wrong answers: {len(report.wrong_answers)}")
    for problem in report.wrong_answers[:20]:
        print(f"  {problem}")
    print(f"/ping: {report.pings} pings, worst {report.worst_ping_seconds:.3f} s, "
          f"{report.ping_failures} failed (limit {PING_LIMIT_SECONDS:g} s)")
    print("PASS" if report.passed else "FAIL")
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "passed": report.passed}, indent=2))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
