#!/usr/bin/env python3
"""`llava serve` through the official `openai` Python client, with the shipped model.

  python3 Scripts/serve/test_openai_client.py [--llava .build/debug/llava]

Starts the server on a free loopback port (file:// images allowed from Prompts/shapes/images,
bodies up to 1 MiB) and checks: a greedy answer equals `llava ask --json` for the same image,
question and settings; a streamed answer concatenates to the same text; a two-turn conversation
answers as `llava chat`'s second turn; stop strings cut whole and streamed answers; per-request merge/keep
changes usage.prompt_tokens by the image positions removed; a second request with the same
picture is an image-cache hit; each bad request gets its status and OpenAI's error object and the
server answers afterwards; concurrent requests queue; /v1/models, /health and /metrics answer; SIGTERM during a streamed
answer lets it finish and the server exits 0. Prints `N passed, M failed`; exits 1 on a failure.
"""

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGES = os.path.join(ROOT, "Prompts", "shapes", "images")
IMAGE = os.path.join(IMAGES, "shapes_0000.png")
QUESTION = "Describe the image."
MAX_TOKENS = 40
STOP = " and a red"
FOLLOW_UP = "What color is the cross?"

passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_uri(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def user(text, *urls):
    parts = [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def raw_post(base, path, body, content_type="application/json"):
    """(status, parsed JSON or None) of a POST with a raw body."""
    req = urllib.request.Request(base + path, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


def is_error_object(body):
    return isinstance(body, dict) and isinstance(body.get("error"), dict) \
        and isinstance(body["error"].get("message"), str) and "type" in body["error"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llava", default=os.path.join(ROOT, ".build", "debug", "llava"))
    args = parser.parse_args()
    llava = os.path.abspath(args.llava)

    ask = subprocess.run([llava, "ask", "--json", "--image", IMAGE, "-n", str(MAX_TOKENS), "-s", "0", QUESTION],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    check(ask.returncode == 0, f"llava ask --json runs ({ask.stderr.strip()[:200]})")
    expected = json.loads(ask.stdout)
    full_visual = expected["visual_tokens"]
    full_prompt = len(expected["prompt_ids"])

    chat = subprocess.run([llava, "chat", "--image", IMAGE, "-n", str(MAX_TOKENS), "-s", "0"],
                          input=f"{QUESTION}\n{FOLLOW_UP}\n", capture_output=True, text=True, timeout=600, cwd=ROOT)
    chat_answers = chat.stdout.splitlines()
    check(chat.returncode == 0 and len(chat_answers) == 2 and chat_answers[0] == expected["text"],
          f"llava chat answers two questions ({chat_answers})")
    check(len(expected["generated_ids"]) > 5, f"the answer runs to several tokens ({expected['text']!r})")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([llava, "serve", "--port", str(port), "--allowed-media-path", IMAGES,
                               "--max-body-mb", "1"], cwd=ROOT)
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    health = json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.5)
        check(health == {"status": "ok"}, "GET /health is {\"status\": \"ok\"}")

        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=300)
        settings = dict(model="shapes-llava", max_tokens=MAX_TOKENS, temperature=0, seed=0)

        models = client.models.list()
        check([m.id for m in models.data] == ["shapes-llava"], "GET /v1/models lists the model")

        r = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), **settings)
        extra = r.model_extra or {}
        check(r.object == "chat.completion" and r.id.startswith("chatcmpl-"), "response object and id")
        check(r.choices[0].message.content == expected["text"],
              f"answer equals llava ask --json ({r.choices[0].message.content!r} vs {expected['text']!r})")
        check(r.choices[0].finish_reason == ("stop" if expected["stop_reason"] == "eos" else "length"),
              f"finish_reason {r.choices[0].finish_reason}")
        check(r.usage.prompt_tokens == full_prompt, f"prompt_tokens {r.usage.prompt_tokens} == {full_prompt} (with image positions)")
        check(r.usage.completion_tokens == len(expected["generated_ids"]), "completion_tokens")
        check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "total_tokens")
        timings = extra.get("timings", {})
        check(timings.get("visual_tokens") == full_visual and "first_token_ms" in timings
              and "predicted_per_second" in timings, f"timings {timings}")

        stream = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), stream=True, **settings)
        pieces, finish, last, objects = [], None, None, set()
        for chunk in stream:
            objects.add(chunk.object)
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
            last = chunk
        check("".join(pieces) == expected["text"] and len(pieces) > 1,
              f"streamed deltas concatenate to the answer ({len(pieces)} deltas)")
        check(objects == {"chat.completion.chunk"}, f"chunk objects {objects}")
        check(finish == r.choices[0].finish_reason, "streamed finish_reason")
        stream_timings = (last.model_extra or {}).get("timings", {}) if last else {}
        check(stream_timings.get("image_cache_hit") is True, "the second request with the picture is an image-cache hit")

        file_url = "file://" + IMAGE
        r2 = client.chat.completions.create(messages=user(QUESTION, file_url), **settings)
        check(r2.choices[0].message.content == expected["text"], "a file:// image inside --allowed-media-path")
        check((r2.model_extra or {}).get("timings", {}).get("image_cache_hit") is True,
              "the same picture by file:// hits the cache too")

        conversation = user(QUESTION, data_uri(IMAGE)) + [
            {"role": "assistant", "content": expected["text"]}, {"role": "user", "content": FOLLOW_UP}]
        rc = client.chat.completions.create(messages=conversation, **settings)
        check(rc.choices[0].message.content == chat_answers[-1],
              f"a second turn answers as llava chat's second turn ({rc.choices[0].message.content!r})")
        check(rc.usage.prompt_tokens > full_prompt + len(expected["generated_ids"]),
              f"the second turn's prompt holds the first ({rc.usage.prompt_tokens} tokens)")

        for merge, keep in [("tome", 16), ("pitome", 8)]:
            rm = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)),
                                                extra_body={"merge": merge, "keep": keep}, **settings)
            want = full_prompt - full_visual + keep
            check(rm.usage.prompt_tokens == want, f"merge {merge} keep {keep}: prompt_tokens {rm.usage.prompt_tokens} == {want}")
            check((rm.model_extra or {}).get("timings", {}).get("visual_tokens") == keep, f"merge {merge}: visual_tokens {keep}")

        check(STOP in expected["text"], f"the answer holds the stop string {STOP!r}")
        cut = expected["text"].split(STOP)[0]
        rs = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), stop=["never", STOP], **settings)
        check(rs.choices[0].message.content == cut and rs.choices[0].finish_reason == "stop",
              f"a stop string cuts the answer ({rs.choices[0].message.content!r})")
        streamed = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), stop=STOP, stream=True, **settings)
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        check(text == cut, f"a stop string cuts the streamed answer ({text!r})")

        bad = [
            ("two images", dict(messages=user(QUESTION, data_uri(IMAGE), data_uri(IMAGE)))),
            ("bad base64", dict(messages=user(QUESTION, "data:image/png;base64,@@@notbase64"))),
            ("undecodable picture", dict(messages=user(QUESTION, "data:image/png;base64," + base64.b64encode(b"hello, not a png").decode()))),
            ("http image URL", dict(messages=user(QUESTION, "https://example.com/a.png"))),
            ("file:// outside the allowed folder", dict(messages=user(QUESTION, "file:///etc/hostname"))),
            ("ratio out of range", dict(messages=user(QUESTION, data_uri(IMAGE)), extra_body={"merge": "tome", "ratio": 2})),
            ("ratio and keep", dict(messages=user(QUESTION, data_uri(IMAGE)), extra_body={"merge": "tome", "ratio": 0.5, "keep": 8})),
            ("unknown merge", dict(messages=user(QUESTION, data_uri(IMAGE)), extra_body={"merge": "nope"})),
            ("keep 0", dict(messages=user(QUESTION, data_uri(IMAGE)), extra_body={"merge": "tome", "keep": 0})),
            ("wrong field type", dict(messages=user(QUESTION), extra_body={"max_tokens": "many"})),
            ("max_tokens 0", dict(messages=user(QUESTION), max_tokens=0)),
            ("prompt past the context", dict(messages=user("why " * 2000, data_uri(IMAGE)))),
            ("no user message", dict(messages=[{"role": "system", "content": "hi"}])),
        ]
        for name, kwargs in bad:
            call = dict(settings)
            call.update(kwargs)
            try:
                client.chat.completions.create(**call)
                check(False, f"{name}: refused")
            except openai.APIStatusError as e:
                check(e.status_code == 400 and is_error_object(e.body if "error" in (e.body or {}) else {"error": e.body}),
                      f"{name}: 400 with an error object ({e.message[:120]})")

        status, body = raw_post(base, "/v1/chat/completions", b"{not json")
        check(status == 400 and is_error_object(body), f"invalid JSON: {status}")
        status, body = raw_post(base, "/v1/chat/completions",
                                json.dumps({"messages": user("x" * (2 << 20))}).encode())
        check(status == 413 and is_error_object(body), f"a body over --max-body-mb: {status}")
        status, body = raw_post(base, "/v1/nowhere", b"{}")
        check(status == 404 and is_error_object(body), f"unknown route: {status}")

        r3 = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), **settings)
        check(r3.choices[0].message.content == expected["text"], "the server still answers after the bad requests")
        text_only = client.chat.completions.create(messages=[{"role": "user", "content": "Hello?"}], **settings)
        check(isinstance(text_only.choices[0].message.content, str) and text_only.usage.prompt_tokens > 0,
              "a text-only question (content as a string)")

        answers = []
        workers = [threading.Thread(target=lambda: answers.append(client.chat.completions.create(
            messages=user(QUESTION, data_uri(IMAGE)), **settings).choices[0].message.content)) for _ in range(3)]
        for w in workers:
            w.start()
        with urllib.request.urlopen(base + "/health", timeout=10) as h:
            check(h.status == 200, "GET /health answers while requests queue")
        for w in workers:
            w.join()
        check(answers == [expected["text"]] * 3, "three concurrent requests queue and each gets the answer")

        with urllib.request.urlopen(base + "/metrics", timeout=10) as m:
            metrics = m.read().decode()
        for name in ["llava_requests_total", "llava_prompt_tokens_total", "llava_generated_tokens_total",
                     "llava_visual_tokens_total", "llava_image_cache_hits_total", "llava_first_token_seconds_bucket"]:
            check(name in metrics, f"/metrics has {name}")

        stream = client.chat.completions.create(messages=user(QUESTION, data_uri(IMAGE)), stream=True,
                                                **dict(settings, max_tokens=64))
        iterator = iter(stream)
        pieces, finish = [], None
        first = next(iterator)
        server.send_signal(signal.SIGTERM)
        for chunk in [first] + list(iterator):
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        check(finish is not None, "SIGTERM during a streamed answer: the answer finishes")
        code = server.wait(timeout=120)
        check(code == 0, f"SIGTERM: the server exits 0 (got {code})")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
