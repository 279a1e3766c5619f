#!/usr/bin/env python3
"""Runs the shards of an `llava eval run` (or `llava eval sweep`) as Ray tasks, then merges them.

One Ray task per shard, each asking for --threads CPUs, runs the llava binary with
`--shard I/N` and its own answer file under --out (storage every node sees). Answer files are
resumable: a task that is retried (the llava process killed, the Ray worker or node lost) starts
llava again on the same file, and llava carries on after the last saved answer. When every shard
is done the shard files are merged into OUT/answers.jsonl and scored when a key is given; for a
sweep, `llava eval sweep` runs once more without --shard to score every cell and write the table.

  python3 Scripts/distributed/ray_eval.py run --llava .build/release/llava --shards 8 --threads 4 \\
      --out /shared/run1 --questions Prompts/shapes/questions.jsonl \\
      --annotations Prompts/shapes/answers.jsonl -- --model "$PWD/Models/shapes-llava" --merge pitome --ratio 0.9
  python3 Scripts/distributed/ray_eval.py sweep --llava .build/release/llava --shards 4 --out /shared/sweep \\
      -- --benchmarks shapes="$PWD/Prompts/shapes" --merge pitome,tome --ratios 1,0.9 --model "$PWD/Models/shapes-llava"

Everything after `--` goes to llava unchanged (absolute paths there: a task does not run in the
driver's folder). Connects to the cluster at --address (default:
RAY_ADDRESS, else a new local one). Exit status 0 when every shard finished and the merge (and
score) succeeded; otherwise 1, with one line per failed shard; the shard files are kept, so the
same command resumes.
"""

import argparse
import ctypes
import os
import signal
import subprocess
import sys

# Benchmarks whose question ids repeat: their shards are joined in order rather than with
# `llava eval merge`, which refuses a repeated id.
REPEATED_IDS = {"mme", "textvqa"}


class ShardInterrupted(Exception):
    """llava ended by a signal: retried (the answer file resumes)."""


class ShardFailed(Exception):
    """llava exited with an error of its own: not retried."""


def die_with_parent():
    """In the llava child: SIGKILL when the Ray worker that started it dies, so that a retried
    task never finds the answer file still held by an orphan."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_shard(command, log_path, shard):
    """The body of a Ray task: runs llava, its output appended to log_path."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"ray_eval: shard {shard}: {' '.join(command)}\n".encode())
        log.flush()
        status = subprocess.call(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                 preexec_fn=die_with_parent)
    if status < 0 or status in (130, 137, 143):
        raise ShardInterrupted(f"shard {shard}: llava stopped by a signal (status {status}); see {log_path}")
    if status != 0:
        raise ShardFailed(f"shard {shard}: llava exited with status {status}; see {log_path}")
    return shard


def tail(path, lines=1):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def parse(argv):
    p = argparse.ArgumentParser(description="Run llava eval shards as Ray tasks, then merge them.",
                                epilog="Arguments after -- go to llava unchanged.")
    p.add_argument("mode", choices=["run", "sweep"], help="llava eval run (one answer file) or eval sweep")
    p.add_argument("--llava", required=True, help="the llava binary (at the same path on every node)")
    p.add_argument("--shards", type=int, required=True, help="number of shards (Ray tasks)")
    p.add_argument("--out", required=True, help="output folder on storage every node sees")
    p.add_argument("--threads", type=int, default=1, help="llava --threads, and the CPUs each task asks Ray for")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a shard whose llava or worker was killed")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a new local cluster)")
    p.add_argument("--questions", help="run: the question file")
    p.add_argument("--image-folder", help="run: the folder the questions' images are relative to")
    p.add_argument("--annotations", help="run: reference answers; the merged file is scored against them")
    p.add_argument("--benchmark", help="run: a benchmark name (with --data); the merged file is scored")
    p.add_argument("--data", help="run: the benchmark's folder")
    split = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:split])
    a.llava_args = argv[split + 1:]
    if a.shards < 1:
        p.error("--shards must be at least 1")
    if a.threads < 1:
        p.error("--threads must be at least 1")
    if a.max_retries < 0:
        p.error("--max-retries must be >= 0")
    if a.mode == "run" and (a.questions is None) == (a.benchmark is None):
        p.error("run needs --questions Q.jsonl or --benchmark NAME --data DIR")
    if a.mode == "run" and a.benchmark is not None and a.data is None:
        p.error("--benchmark needs --data DIR")
    if a.mode == "sweep" and any(x is not None for x in (a.questions, a.image_folder, a.annotations, a.benchmark, a.data)):
        p.error("sweep takes its benchmarks from the llava flags after -- (--benchmarks ...)")
    given = {x.split("=", 1)[0] for x in a.llava_args}
    taken = {"--shard", "--shard-count", "--threads", "-t", "--answers", "--out"}
    if a.mode == "run":
        taken |= {"--questions", "--image-folder", "--annotations", "--benchmark", "--data"}
    if given & taken:
        p.error(f"give {', '.join(sorted(given & taken))} to ray_eval.py, not after -- (it sets them for each shard)")
    if not (os.path.isfile(a.llava) and os.access(a.llava, os.X_OK)):
        p.error(f"--llava {a.llava}: not an executable file")
    return a


def absolute(path):
    return os.path.abspath(path) if path is not None else None


def shard_commands(a):
    """(shard label, command, answer or log path) for every shard."""
    llava = absolute(a.llava)
    out = absolute(a.out)
    n = a.shards
    jobs = []
    for i in range(1, n + 1):
        label = f"{i}/{n}"
        log = os.path.join(out, "logs", f"shard-{i}-of-{n}.log")
        if a.mode == "sweep":
            command = [llava, "eval", "sweep", "--out", out]
        else:
            command = [llava, "eval", "run", "--answers", os.path.join(out, "shards", f"shard-{i}-of-{n}.jsonl")]
            if a.questions:
                command += ["--questions", absolute(a.questions)]
            if a.image_folder:
                command += ["--image-folder", absolute(a.image_folder)]
            if a.benchmark:
                command += ["--benchmark", a.benchmark, "--data", absolute(a.data)]
        command += ["--shard", label, "--threads", str(a.threads)] + a.llava_args
        jobs.append((label, command, log))
    return jobs


def run_all(a, jobs):
    """Runs every shard as a Ray task; returns the messages of the shards that failed."""
    import ray

    ray.init(address=a.address or os.environ.get("RAY_ADDRESS"), logging_level="ERROR", log_to_driver=False)
    task = ray.remote(run_shard).options(num_cpus=a.threads, max_retries=a.max_retries,
                                         retry_exceptions=[ShardInterrupted])
    refs = {task.remote(command, log, label): (label, log) for label, command, log in jobs}
    failures = []
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        label, log = refs[done[0]]
        try:
            ray.get(done[0])
            print(f"ray_eval: shard {label} done", file=sys.stderr)
        except Exception as error:  # a task's own exception or a lost worker, after its retries
            cause = getattr(error, "cause", None) or error
            failures.append(f"shard {label} failed: {str(cause).strip().splitlines()[-1]} (log: {tail(log)})")
    ray.shutdown()
    return failures


def finish(a, jobs):
    """Merges (and scores) a run, or writes a sweep's table; returns llava's exit status."""
    llava = absolute(a.llava)
    out = absolute(a.out)
    if a.mode == "sweep":
        return subprocess.call([llava, "eval", "sweep", "--out", out, "--threads", str(a.threads)] + a.llava_args)
    shards = [os.path.join(out, "shards", f"shard-{i}-of-{a.shards}.jsonl") for i in range(1, a.shards + 1)]
    merged = os.path.join(out, "answers.jsonl")
    if a.benchmark in REPEATED_IDS:
        with open(merged + ".tmp", "wb") as joined:
            for path in shards:
                with open(path, "rb") as f:
                    joined.write(f.read())
        os.replace(merged + ".tmp", merged)
    else:
        status = subprocess.call([llava, "eval", "merge", "--answers", merged] + shards)
        if status != 0:
            return status
    if a.benchmark:
        return subprocess.call([llava, "eval", "score", "--benchmark", a.benchmark, "--data", absolute(a.data),
                                "--answers", merged])
    if a.annotations:
        score = [llava, "eval", "score", "--answers", merged, "--annotations", absolute(a.annotations)]
        if a.questions:
            score += ["--questions", absolute(a.questions)]
        return subprocess.call(score)
    return 0


def main(argv):
    a = parse(argv)
    jobs = shard_commands(a)
    os.makedirs(os.path.join(absolute(a.out), "shards" if a.mode == "run" else "logs"), exist_ok=True)
    failures = run_all(a, jobs)
    for line in failures:
        print(f"ray_eval: error: {line}", file=sys.stderr)
    if failures:
        print(f"ray_eval: {len(failures)} of {a.shards} shards failed; the shard files are kept, run the same command again to resume",
              file=sys.stderr)
        return 1
    return 1 if finish(a, jobs) != 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
