#!/usr/bin/env python3
"""ray_eval.py on a local Ray cluster (a head and one worker node on 127.0.0.1), with shards killed
mid-run: the merged answers must equal an unsharded run's.

  python3 Scripts/distributed/test_ray_eval.py [--llava .build/debug/llava]

The shipped model answers the first 120 questions of Prompts/shapes in 3 shards on 2 CPUs. While
shards 1 and 2 run, shard 1's llava process is killed (the task fails and is retried) and shard
2's Ray worker process is killed (the worker is lost; Ray runs the task again, and llava dies with
its worker). Both retries resume their answer files. Then a sweep (2 settings of 8 questions)
runs as 2 Ray tasks and its table must equal an unsharded sweep's. The cluster is stopped with
`ray stop --force` at the end, whatever happened. Prints `N passed, M failed`; exits 1 on a
failure.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DRIVER = os.path.join(ROOT, "Scripts", "distributed", "ray_eval.py")
MODEL = os.path.join(ROOT, "Models", "shapes-llava")
PROMPTS = os.path.join(ROOT, "Prompts", "shapes")
QUESTIONS = 120
SHARDS = 3
TIME_LIMIT = 900  # seconds for each llava or driver command
TOTAL_LIMIT = 1800  # seconds for the whole test, the cluster stopped in any case

passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAILED: {what}")
    return ok


def run(command, **kw):
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIME_LIMIT, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comparable(path):
    """Answer lines without what differs between two runs of the same questions."""
    out = []
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            o.pop("answer_id", None)
            for key in ("timings", "image_cache_hit"):
                o["metadata"].pop(key, None)
            out.append(json.dumps(o, sort_keys=True))
    return out


def line_count(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def processes_with(argument):
    """Pids of processes whose command line has `argument` (an answer file path of this test)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            pids.append(int(entry))
    return pids


def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def wait_gone(pid, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def llava_run(llava, questions, answers, *extra):
    return run([llava, "eval", "run", "--model", MODEL, "--questions", questions, "--image-folder",
                os.path.join(PROMPTS, "images"), "--answers", answers, "--threads", "1", "--quiet", *extra])


def write_slice(path, source, count):
    with open(source) as f, open(path, "w") as out:
        for _, line in zip(range(count), f):
            out.write(line)


def kill_mid_shard(driver, out, victims):
    """`victims` maps a shard to True (kill the Ray worker running it) or False (kill its llava
    process). Each is killed once it has saved two answers and has more to go. Returns what was
    killed, one line per shard, or why it could not be."""
    chunk = -(-QUESTIONS // SHARDS)
    killed = {}
    deadline = time.time() + TIME_LIMIT
    while len(killed) < len(victims) and time.time() < deadline and driver.poll() is None:
        for shard, kill_worker in victims.items():
            if shard in killed:
                continue
            answers = os.path.join(out, "shards", f"shard-{shard}-of-{SHARDS}.jsonl")
            size = len(range(QUESTIONS)[(shard - 1) * chunk:shard * chunk])
            n = line_count(answers)
            if n >= size:
                killed[shard] = None
                print(f"shard {shard} finished before it could be killed")
                continue
            pids = processes_with(answers) if n >= 2 else []
            if len(pids) == 1:
                llava = pids[0]
                os.kill(parent(llava) if kill_worker else llava, signal.SIGKILL)
                killed[shard] = f"{'the Ray worker running' if kill_worker else 'the llava process of'} shard {shard} after {n} of {size} answers"
                if kill_worker:
                    check(wait_gone(llava), f"shard {shard}: llava ended with its killed Ray worker")
        time.sleep(0.005)
    return [killed.get(shard) for shard in victims]


def test_run(llava, work, address):
    questions = os.path.join(work, "questions.jsonl")
    write_slice(questions, os.path.join(PROMPTS, "questions.jsonl"), QUESTIONS)
    whole = os.path.join(work, "whole.jsonl")
    r = llava_run(llava, questions, whole)
    if not check(r.returncode == 0 and line_count(whole) == QUESTIONS, f"unsharded run of {QUESTIONS} questions"):
        print(r.stdout)
        return
    out = os.path.join(work, "ray-run")
    driver = subprocess.Popen([sys.executable, DRIVER, "run", "--llava", llava, "--shards", str(SHARDS), "--threads", "1",
                               "--out", out, "--address", address, "--max-retries", "3",
                               "--questions", questions, "--image-folder", os.path.join(PROMPTS, "images"),
                               "--annotations", os.path.join(PROMPTS, "answers.jsonl"), "--", "--model", MODEL],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        killed = kill_mid_shard(driver, out, {1: False, 2: True})
        output, _ = driver.communicate(timeout=TIME_LIMIT)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    print(output.rstrip())
    for k in killed:
        print(f"killed: {k}")
    check(all(killed), "a shard's llava process and another shard's Ray worker were killed mid-shard")
    if not check(driver.returncode == 0, f"ray_eval.py run exited 0 (got {driver.returncode})"):
        return
    for shard in (1, 2):
        log = open(os.path.join(out, "logs", f"shard-{shard}-of-{SHARDS}.log")).read()
        starts = log.count(f"ray_eval: shard {shard}/{SHARDS}:")
        resumed = [line for line in log.splitlines() if "already answered" in line and ", 0 already answered" not in line]
        check(starts >= 2 and resumed, f"shard {shard} was run again and resumed its answer file ({starts} starts; {resumed[:1]})")
    merged = os.path.join(out, "answers.jsonl")
    check(comparable(merged) == comparable(whole), "the merged answers equal the unsharded run's")
    score = run([llava, "eval", "score", "--answers", whole, "--annotations", os.path.join(PROMPTS, "answers.jsonl"),
                 "--questions", questions, "--summary", os.path.join(work, "whole.score.json")])
    check(score.returncode == 0 and "overall" in score.stdout and score.stdout.strip() in output,
          "the driver printed the scores of the unsharded run")


def test_sweep(llava, work, address):
    folder = os.path.join(work, "sweep-questions")
    os.makedirs(folder)
    write_slice(os.path.join(folder, "questions.jsonl"), os.path.join(PROMPTS, "questions.jsonl"), 8)
    write_slice(os.path.join(folder, "answers.jsonl"), os.path.join(PROMPTS, "answers.jsonl"), 8)
    os.symlink(os.path.join(PROMPTS, "images"), os.path.join(folder, "images"))
    flags = ["--benchmarks", f"shapes={folder}", "--merge", "pitome", "--ratios", "1,0.5", "--model", MODEL]
    plain = os.path.join(work, "sweep-plain")
    r = run([llava, "eval", "sweep", "--out", plain, "--threads", "1", "--quiet"] + flags)
    if not check(r.returncode == 0, "unsharded sweep"):
        print(r.stdout)
        return
    out = os.path.join(work, "sweep-ray")
    r = run([sys.executable, DRIVER, "sweep", "--llava", llava, "--shards", "2", "--out", out, "--address", address,
             "--"] + flags)
    print(r.stdout.rstrip())
    if not check(r.returncode == 0, f"ray_eval.py sweep exited 0 (got {r.returncode})"):
        return

    def rows(path):
        with open(os.path.join(path, "table.json")) as f:
            return [{k: v for k, v in row.items() if k != "ttft_ms_mean"} for row in json.load(f)["rows"]]

    for cell in ("none/shapes.jsonl", "pitome-ratio0.5/shapes.jsonl"):
        a, b = os.path.join(plain, "cells", cell), os.path.join(out, "cells", cell)
        check(os.path.exists(b) and comparable(a) == comparable(b), f"sweep cell {cell} equals the unsharded sweep's")
    check(rows(out) == rows(plain) and len(rows(out)) == 2, "the sweep's table equals the unsharded sweep's")


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    raise Stopped(f"stopped by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(TOTAL_LIMIT)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--llava", default=os.path.join(ROOT, ".build", "debug", "llava"))
    a = p.parse_args()
    llava = os.path.abspath(a.llava)
    if not os.access(llava, os.X_OK):
        print(f"test_ray_eval: {llava}: no llava binary (swift build --product llava)", file=sys.stderr)
        return 1
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")  # the ray beside this Python
    if not os.access(ray_bin, os.X_OK):
        ray_bin = shutil.which("ray")
    if ray_bin is None:
        print("test_ray_eval: no ray command (pip install ray)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="ray-eval-test-")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit
    port = free_port()
    address = f"127.0.0.1:{port}"
    # The cluster, the driver and its tasks share a token of their own (whatever ~/.ray holds).
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    env = dict(os.environ)
    try:
        head = run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                    "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"], env=env)
        worker = run([ray_bin, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1"], env=env)
        if check(head.returncode == 0 and worker.returncode == 0, f"local Ray cluster at {address}: head and one worker node"):
            test_run(llava, work, address)
            test_sweep(llava, work, address)
        else:
            print(head.stdout[-2000:], worker.stdout[-2000:])
    except Stopped as error:
        check(False, f"the test finished ({error})")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cluster is stopped in any case
        stopped = subprocess.run([ray_bin, "stop", "--force"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=120, env=env)
        left = processes_with(os.path.join(work, "sweep-ray"))
        for i in range(1, SHARDS + 1):
            left += processes_with(os.path.join(work, "ray-run", "shards", f"shard-{i}-of-{SHARDS}.jsonl"))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        check(stopped.returncode == 0 and not left, "ray stop --force; no llava process left")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(temp_dir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
