"""The fault suite's driver (run by ops/faults, which starts the servers).

Steady mixed traffic against classbell — inbox reads, unread counts,
acknowledgments, publishes, health checks over HTTP, and open websockets —
while a dependency is stopped and started again by the commands ops/faults
passes in. For each fault it prints one line with what the clients saw and
checks the promise: no 5xx but 503 (with Retry-After) where a dependency is
down, no wait beyond the pool timeout, websockets kept open, recovery within
5 s of the dependency's return, and nothing lost: every acknowledgment that
got a 2xx is in the database afterwards. Exits non-zero when one is broken.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import websockets

PASSWORD = "Bell-Demo-2026!"


def http(base, method, path, token=None, body=None, timeout=30):
    """(status, headers, parsed body or None, seconds)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        text, status, headers = error.read(), error.code, error.headers
    except OSError:
        return 0, {}, None, time.monotonic() - started
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return status, headers, parsed, time.monotonic() - started


def token(base, username):
    status, _, body, _ = http(base, "POST", "/auth/login", body={"username": username, "password": PASSWORD})
    if status != 200:
        sys.exit(f"faults: cannot sign in as {username}: {status} {body}")
    return body["access_token"]


class Traffic:
    """Worker threads that keep requests going and tally what came back."""

    def __init__(self, base, students, teacher, section_id):
        self.base, self.students, self.teacher, self.section = base, students, teacher, section_id
        self.lock = threading.Lock()
        self.statuses = Counter()
        self.slowest = 0.0
        self.missing_retry_after = 0
        self.latencies = []
        self.acked = set()  # delivery ids a 2xx acknowledged
        self.published = 0
        self.stop = threading.Event()
        self.threads = []

    def record(self, status, headers, seconds):
        with self.lock:
            self.statuses[status] += 1
            self.slowest = max(self.slowest, seconds)
            self.latencies.append(seconds)
            if status == 503 and not headers.get("retry-after"):
                self.missing_retry_after += 1

    def reset(self):
        with self.lock:
            self.statuses.clear()
            self.slowest = 0.0
            self.missing_retry_after = 0

    def student_loop(self, token):
        while not self.stop.is_set():
            status, headers, body, seconds = http(self.base, "GET", "/api/deliveries?limit=20", token)
            self.record(status, headers, seconds)
            if status == 200:
                for item in body["items"]:
                    if item["state"] != "acknowledged":
                        ack = http(self.base, "POST", f"/api/deliveries/{item['id']}/ack", token)
                        self.record(ack[0], ack[1], ack[3])
                        if 200 <= ack[0] < 300:
                            with self.lock:
                                self.acked.add(item["id"])
                        break
            unread = http(self.base, "GET", "/api/unread_count", token)
            self.record(unread[0], unread[1], unread[3])
            time.sleep(0.05)

    def teacher_loop(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {"title": f"Fault drill {n}", "body": "Keep calm.",
                    "audience": {"kind": "section", "section_id": self.section}}
            status, headers, _, seconds = http(self.base, "POST", "/api/announcements", self.teacher, body)
            self.record(status, headers, seconds)
            if status == 201:
                with self.lock:
                    self.published += 1
            time.sleep(1.0)

    def start(self):
        self.threads = [threading.Thread(target=self.student_loop, args=(t,), daemon=True) for t in self.students]
        self.threads.append(threading.Thread(target=self.teacher_loop, daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


class Sockets:
    """Websockets held open through a fault, counting what they receive."""

    def __init__(self, base, tokens):
        self.base, self.tokens = base, tokens
        self.closed = 0
        self.messages = Counter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks = []

    async def hold(self, token):
        url = self.base.replace("http", "ws", 1) + "/ws"
        try:
            async with websockets.connect(url, additional_headers={"authorization": f"Bearer {token}"},
                                          ping_interval=None, max_size=None) as socket:
                async for raw in socket:
                    self.messages[json.loads(raw).get("type")] += 1
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - any end counts as closed
            pass
        self.closed += 1

    def start(self):
        self.thread.start()
        self.tasks = [asyncio.run_coroutine_threadsafe(self.hold(t), self.loop) for t in self.tokens]

    def stop(self):
        async def close():
            holding = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in holding:
                task.cancel()
            await asyncio.gather(*holding, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def wait_until_ok(base, token, limit):
    """Seconds until an inbox read answers 200 again (None past `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if http(base, "GET", "/api/deliveries?limit=1", token, timeout=10)[0] == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def acked_in_database(psql, ids):
    if not ids:
        return 0
    listed = ",".join(str(i) for i in ids)
    out = subprocess.run(psql + ["-tAc", f"SELECT count(*) FROM deliveries WHERE id IN ({listed}) "
                                 "AND state = 'acknowledged'"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def run(command):
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sql(psql, statement):
    out = subprocess.run(psql + ["-tAc", statement], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Node:
    """`classbell serve`, started from this process so it can be killed."""

    def __init__(self, binary, base, log):
        self.binary, self.base, self.log = binary, base, log
        self.process = None

    def start(self):
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([self.binary, "serve"], stdout=log, stderr=log)
        for _ in range(300):
            if http(self.base, "GET", "/healthz", timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        sys.exit("faults: classbell did not start")

    def kill(self):
        """SIGKILL: no chance to finish anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def form_post(base, path, token, fields, filename, content, kind):
    """A multipart POST of text `fields` then a file: (status, parsed body)."""
    boundary = "classbell-faults-boundary"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
                    for name, value in fields)
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
             f"Content-Type: {kind}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base + path, data=body, method="POST")
    request.add_header("content-type", f"multipart/form-data; boundary={boundary}")
    request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def multipart(base, path, token, filename, content):
    status, body = form_post(base, path, token, [], filename, content, "text/csv")
    if body is None:
        sys.exit(f"faults: {path} answered {status}")
    return body


def wait_for(check, limit, step=0.05):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


def killed_mid_work(node, args, psql, problems):
    """SIGKILL mid-fan-out, mid-import and mid-export; then a restart."""
    manager = token(args.base, "manager")
    # Fan-out: every student, in small chunks so the kill lands mid-way.
    body = {"title": "Fire drill", "body": "Line up outside.", "audience": {"kind": "all_students"}}
    announcement = http(args.base, "POST", "/api/announcements", manager, body)[2]["id"]
    stats = lambda: http(args.base, "GET", f"/api/announcements/{announcement}/stats", manager)[2]
    wait_for(lambda: (stats() or {}).get("fanout", {}).get("done", 0) > 0, 30)
    done_at_kill = int(sql(psql, f"SELECT count(*) FROM deliveries WHERE announcement_id = {announcement}"))
    # An import and an export under way too.
    rows = b"code,title\n" + b"".join(f"KILL-{i},Course {i}\n".encode() for i in range(args.import_rows))
    imported = multipart(args.base, "/api/imports/courses", manager, "courses.csv", rows)["task_id"]
    exported = http(args.base, "POST", "/api/exports/courses", manager)[2]["task_id"]
    wait_for(lambda: http(args.base, "GET", f"/api/tasks/{imported}", manager)[2]["state"] == "PROGRESS", 30, 0.01)
    node.kill()
    node.start()
    token_after = token(args.base, "manager")
    finished = wait_for(lambda: (http(args.base, "GET", f"/api/announcements/{announcement}/stats",
                                       token_after)[2] or {}).get("fanout", {}).get("finished"), 120, 0.2)
    expected = int(sql(psql, "SELECT count(*) FROM users WHERE role = 'student' AND is_active"))
    counts = sql(psql, f"SELECT count(*), count(DISTINCT user_id) FROM deliveries WHERE announcement_id = {announcement}")
    written, distinct = (int(x) for x in counts.split("|"))
    print(f"killed mid-fan-out ({done_at_kill} of {expected} written): after restart {written} deliveries, "
          f"{distinct} distinct, {expected - distinct} lost, {written - distinct} duplicated", flush=True)
    if not finished or written != expected or distinct != expected:
        problems.append(f"fan-out after a kill: {written} deliveries ({distinct} distinct) for {expected} students")
    outcomes = []
    for name, task in [("import", imported), ("export", exported)]:
        end = wait_for(lambda: (lambda t: t if t["state"] in ("SUCCESS", "FAILURE") else None)(
            http(args.base, "GET", f"/api/tasks/{task}", token_after)[2]), 120, 0.2)
        outcomes.append(f"{name} {end['state'] if end else 'unfinished'}")
        if not end or end["state"] != "SUCCESS":
            problems.append(f"{name} after a kill: {end}")
        elif name == "import" and end["result"].get("ok") != args.import_rows:
            problems.append(f"import after a kill: {end['result']}")
    imported_rows = int(sql(psql, "SELECT count(*) FROM courses WHERE code LIKE 'KILL-%'"))
    print(f"killed mid-import and mid-export: {', '.join(outcomes)}; {imported_rows} of {args.import_rows} "
          f"courses imported, each once", flush=True)
    if imported_rows != args.import_rows:
        problems.append(f"import after a kill: {imported_rows} courses of {args.import_rows}")
    return announcement, token_after


def storage_down(args, psql, problems):
    """The S3 server stopped: uploads and downloads answer 503, and no
    attachment row is left without its object."""
    manager = token(args.base, "manager")
    course = http(args.base, "POST", "/api/courses", manager, {"code": "S3-DRILL", "title": "Storage drill"})[2]["id"]
    upload = lambda title: form_post(args.base, "/api/course_attachments", manager,
                                     [("course", course), ("title", title)], "drill.pdf", b"%PDF-1.4 drill",
                                     "application/pdf")[0]
    first = upload("Before")
    rows = lambda: int(sql(psql, "SELECT count(*) FROM course_attachments"))
    kept = rows()
    some = sql(psql, "SELECT id FROM course_attachments ORDER BY id LIMIT 1")
    run(args.s3_stop)
    answers = Counter(upload(f"During {i}") for i in range(5))
    answers.update(http(args.base, "GET", f"/api/course_attachments/{some}/download", manager)[0] for _ in range(5))
    added = rows() - kept
    run(args.s3_start)
    back = wait_for(lambda: upload("After") == 201, 60, 0.5)
    ids = sql(psql, "SELECT id FROM course_attachments").split()
    unreadable = [i for i in ids if http(args.base, "GET", f"/api/course_attachments/{i}/download", manager)[0] != 200]
    print(f"s3 down: uploads and downloads answered {dict(answers)}, {added} rows added meanwhile; after: "
          f"{'uploads work' if back else 'uploads still fail'}, {len(unreadable)} of {len(ids)} files unreadable",
          flush=True)
    if first != 201:
        problems.append(f"s3: the upload before the fault answered {first}")
    if set(answers) != {503}:
        problems.append(f"s3: answers while down were {dict(answers)}, not all 503")
    if added or unreadable or not back:
        problems.append(f"s3: {added} rows added while down, {len(unreadable)} unreadable, back {bool(back)}")


def metric(text, name):
    """The values of a metric's series in Prometheus text."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name) and (len(line) > len(name) and line[len(name)] in " {")]
    return values


def soak(node, traffic, args, psql, problems):
    """Steady traffic for `args.soak` minutes: RSS, pool waits, mailbox
    depths and p99 latency each minute, flat from minute 2 on."""
    rows = []
    last_wait = (0.0, 0.0)
    for minute in range(1, args.soak + 1):
        with traffic.lock:
            traffic.latencies = []
            before = sum(traffic.statuses.values())
        time.sleep(60)
        with traffic.lock:
            latencies = sorted(traffic.latencies)
            requests = sum(traffic.statuses.values()) - before
            errors = sum(n for status, n in traffic.statuses.items() if status >= 500 or status == 0)
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
        with open(f"/proc/{node.process.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
        text = urllib.request.urlopen(args.base + "/metrics", timeout=10).read().decode()
        wait_sum = sum(metric(text, 'classbell_pool_acquire_wait_seconds_sum{pool="postgres"}'))
        wait_count = sum(metric(text, 'classbell_pool_acquire_wait_seconds_count{pool="postgres"}'))
        waited = (wait_sum - last_wait[0]) / max(wait_count - last_wait[1], 1)
        last_wait = (wait_sum, wait_count)
        depth = max(metric(text, "classbell_actor_mailbox_depth") or [0])
        rows.append((rss, p99, waited, depth))
        print(f"soak minute {minute:2}: {requests} requests, p99 {p99 * 1000:.0f} ms, RSS {rss:.0f} MiB, "
              f"pool wait {waited * 1000:.1f} ms, deepest mailbox {depth:.0f}, 5xx so far {errors}", flush=True)
    if len(rows) >= 3:
        settled, end = rows[1], rows[-1]
        if end[0] > settled[0] * 1.25 + 16:
            problems.append(f"soak: RSS grew from {settled[0]:.0f} to {end[0]:.0f} MiB")
        if end[1] > max(settled[1] * 2, 0.05):
            problems.append(f"soak: p99 went from {settled[1] * 1000:.0f} to {end[1] * 1000:.0f} ms")
        if end[3] > 100:
            problems.append(f"soak: a mailbox holds {end[3]:.0f} messages")
    if any(s >= 500 or s == 0 for s in traffic.statuses):
        problems.append(f"soak: errors {dict(traffic.statuses)}")


def relay_down(args, announcement, manager, problems):
    """The SMTP relay stopped while reminder mail is queued, then back."""
    run(args.smtp_stop)
    reminded = http(args.base, "POST", f"/api/announcements/{announcement}/remind_unacked", manager)[2]["reminded"]
    time.sleep(args.smtp_down)
    run(args.smtp_start)
    subject = "Reminder: Fire drill"

    def arrived():
        ids = []
        for name in os.listdir(args.maildir):
            with open(os.path.join(args.maildir, name), errors="replace") as mail:
                text = mail.read()
            if subject in text:
                ids += [line.split(":", 1)[1].strip() for line in text.splitlines()
                        if line.lower().startswith("message-id:")]
        return ids

    started = time.monotonic()
    # Mail waiting out its backoff, then the relay's pace.
    limit = 120 + reminded / 10
    ids = wait_for(lambda: (lambda found: found if len(set(found)) >= reminded else None)(arrived()), limit, 0.5) \
        or arrived()
    took = time.monotonic() - started
    print(f"smtp down {args.smtp_down:.0f} s with {reminded} reminder mails queued: {len(set(ids))} arrived "
          f"{took:.0f} s after it came back, {len(ids) - len(set(ids))} twice", flush=True)
    if len(set(ids)) != reminded or len(ids) != len(set(ids)):
        problems.append(f"smtp: {len(set(ids))} of {reminded} mails arrived, {len(ids) - len(set(ids))} twice")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--psql", required=True, help="a psql command line for the database")
    parser.add_argument("--pg-stop", required=True)
    parser.add_argument("--pg-start", required=True)
    parser.add_argument("--pg-down", type=float, default=20)
    parser.add_argument("--redis-stop", required=True)
    parser.add_argument("--redis-start", required=True)
    parser.add_argument("--redis-down", type=float, default=30)
    parser.add_argument("--pool-timeout", type=float, default=2)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--smtp-stop", required=True)
    parser.add_argument("--smtp-start", required=True)
    parser.add_argument("--smtp-down", type=float, default=60)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--s3-stop")
    parser.add_argument("--s3-start")
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--soak", type=int, default=0, help="minutes of steady traffic only")
    parser.add_argument("--import-rows", type=int, default=5000)
    args = parser.parse_args()
    psql = args.psql.split()
    problems = []
    sql(psql, "INSERT INTO users (username, display_name, email, password_hash, role) "
              f"SELECT 'drill' || g, 'Drill ' || g, 'drill' || g || '@school.example', 'x', 'student' "
              f"FROM generate_series(1, {args.students}) g")
    node = Node(args.bin, args.base, args.log)
    node.start()

    students = [token(args.base, f"student{n:02}") for n in range(1, 9)]
    teacher = token(args.base, "ms.rivera")
    sections = http(args.base, "GET", "/api/me/sections?limit=1", teacher)[2]["items"]
    traffic = Traffic(args.base, students, teacher, sections[0]["id"])
    sockets = Sockets(args.base, students)
    sockets.start()
    traffic.start()
    time.sleep(3)
    if args.soak:
        traffic.reset()
        soak(node, traffic, args, psql, problems)
        traffic.finish()
        sockets.stop()
        acked = set(traffic.acked)
        stored = acked_in_database(psql, acked)
        print(f"acknowledgments: {len(acked)} answered 2xx, {stored} in the database", flush=True)
        if stored != len(acked):
            problems.append(f"soak: {len(acked) - stored} acknowledgments lost")
        node.stop()
        for problem in problems:
            print(f"FAULT: {problem}", file=sys.stderr)
        sys.exit(1 if problems else 0)

    # --- PostgreSQL stopped, then started -------------------------------------
    traffic.reset()
    run(args.pg_stop)
    time.sleep(args.pg_down)
    during = dict(traffic.statuses)
    slowest = traffic.slowest
    no_retry_after = traffic.missing_retry_after
    run(args.pg_start)
    recovered = wait_until_ok(args.base, students[0], 30)
    time.sleep(2)
    bad = {s: n for s, n in during.items() if s >= 500 and s != 503 or s == 0}
    line = (f"postgres down {args.pg_down:.0f} s: requests {dict(sorted(during.items()))}, "
            f"slowest {slowest:.2f} s, 503 without Retry-After {no_retry_after}, "
            f"websockets closed {sockets.closed}/{len(students)}, "
            f"recovered {'never' if recovered is None else f'in {recovered:.1f} s'}")
    print(line, flush=True)
    if bad:
        problems.append(f"postgres: answers other than 503 for a 5xx: {bad}")
    if no_retry_after:
        problems.append("postgres: 503 without Retry-After")
    if slowest > args.pool_timeout + 2:
        problems.append(f"postgres: a request waited {slowest:.1f} s (pool timeout {args.pool_timeout} s)")
    if sockets.closed:
        problems.append(f"postgres: {sockets.closed} websockets closed")
    if recovered is None or recovered > 5:
        problems.append("postgres: not recovered within 5 s")

    # --- Redis stopped, then started ------------------------------------------
    traffic.reset()
    published_before = traffic.published
    pushed_before = sockets.messages["delivery.created"]
    run(args.redis_stop)
    time.sleep(args.redis_down)
    during = dict(traffic.statuses)
    published = traffic.published - published_before
    pushed = sockets.messages["delivery.created"] - pushed_before
    run(args.redis_start)
    time.sleep(3)
    failed = {s: n for s, n in during.items() if not 200 <= s < 300}
    print(f"redis down {args.redis_down:.0f} s: requests {dict(sorted(during.items()))}, "
          f"published {published}, pushed live {pushed}, "
          f"websockets closed {sockets.closed}/{len(students)}", flush=True)
    if pushed == 0:
        problems.append("redis: no live push on this node while Redis was down")
    if failed:
        problems.append(f"redis: requests that need no Redis failed: {failed}")
    if published == 0:
        problems.append("redis: nothing was published while Redis was down")

    traffic.finish()
    sockets.stop()
    acked = set(traffic.acked)
    stored = acked_in_database(psql, acked)
    print(f"acknowledgments: {len(acked)} answered 2xx, {stored} in the database, "
          f"{len(acked) - stored} lost; live messages received {dict(sockets.messages)}", flush=True)
    if stored != len(acked):
        problems.append(f"{len(acked) - stored} acknowledged deliveries are not acknowledged in the database")

    announcement, manager = killed_mid_work(node, args, psql, problems)
    relay_down(args, announcement, manager, problems)
    if args.s3_stop:
        storage_down(args, psql, problems)
    node.stop()

    for problem in problems:
        print(f"FAULT: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
