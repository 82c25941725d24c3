"""The fault suite's driver (run by ops/faults, which starts the servers).

Steady mixed traffic against two classbell nodes — sign-ins, inbox reads,
unread counts, acknowledgments over HTTP and websocket, publishes to a
section and to every student, imports and exports, and open websockets on
both nodes — while a dependency is stopped and started again by the
commands ops/faults passes in. For each fault it prints one line with what
the clients saw and checks the promise: no 5xx but 503 (with Retry-After)
where a dependency is down, no wait beyond the pool timeout, websockets
kept open, recovery within 5 s of the dependency's return, every client
hears each of its deliveries exactly once (across nodes too, after a Redis
outage), stalled clients are closed while the others' latency holds, and
nothing is lost: every acknowledgment that got a 2xx (or a websocket
confirmation) is in the database afterwards, and object storage holds
exactly the files rows own. Exits non-zero when one is broken.
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from collections import Counter, defaultdict

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


def user_of(access_token):
    """The user id an access token names (its `sub`)."""
    claims = access_token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"])


def minted_tokens(psql, secret, count):
    """Access tokens for `count` drill students, minted the way the server
    does (an auth session each, HS256 with its secret), since signing in a
    thousand students one by one would only measure argon2."""
    rows = sql(psql, "INSERT INTO auth_sessions (id, user_id) SELECT gen_random_uuid(), id FROM users "
                     f"WHERE username LIKE 'drill%' ORDER BY id LIMIT {count} RETURNING id || ' ' || user_id")
    tokens = []
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")
    for line in rows.splitlines():
        if " " not in line:
            continue
        session, user = line.split()
        now = int(time.time())
        claims = {"sub": user, "role": "student", "iat": now, "exp": now + 3600,
                  "jti": str(uuid.uuid4()), "sid": session}
        signing = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + \
            encode(json.dumps(claims).encode())
        signature = encode(hmac.new(secret.encode(), signing, hashlib.sha256).digest())
        tokens.append((signing + b"." + signature).decode())
    return tokens


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
        self.signins = Counter()  # sign-in answers, apart: they need Redis (the throttle)
        self.jobs = Counter()  # imports and exports that ended, by state
        self.stop = threading.Event()
        self.threads = []
        self.manager = None
        self.staff_every = 15.0
        # Set while a measurement wants the school-wide work paused.
        self.quiet = threading.Event()
        self.staff_busy = threading.Event()

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

    def staff_loop(self):
        """Every `staff_every` seconds: a sign-in, a publish to every student,
        an import of 100 courses and an export, each followed to its end."""
        n = 0
        while not self.stop.wait(self.staff_every):
            if self.quiet.is_set():
                continue
            self.staff_busy.set()
            self.staff_round(n := n + 1)
            self.staff_busy.clear()

    def staff_round(self, n):
        """One round of the staff's work."""
        status, headers, body, seconds = http(self.base, "POST", "/auth/login",
                                              body={"username": "manager", "password": PASSWORD})
        with self.lock:
            self.signins[status] += 1
        if status == 200:
            self.manager = body["access_token"]
        if not self.manager:
            return
        body = {"title": f"School-wide drill {n}", "body": "Everyone reads this.",
                "audience": {"kind": "all_students"}}
        answer = http(self.base, "POST", "/api/announcements", self.manager, body)
        self.record(answer[0], answer[1], answer[3])
        rows = b"code,title\n" + b"".join(f"STEADY-{n}-{i},Steady {i}\n".encode() for i in range(100))
        started = time.monotonic()
        status, imported, headers = form_post(self.base, "/api/imports/courses", self.manager, [], "c.csv",
                                              rows, "text/csv")
        self.record(status, headers, time.monotonic() - started)
        exported = http(self.base, "POST", "/api/exports/courses", self.manager)
        self.record(exported[0], exported[1], exported[3])
        tasks = [t for t in [(imported or {}).get("task_id"), (exported[2] or {}).get("task_id")] if t]
        for task in tasks:
            end = wait_for(lambda: (lambda t: t if t and t.get("state") in ("SUCCESS", "FAILURE") else None)(
                http(self.base, "GET", f"/api/tasks/{task}", self.manager)[2]), 60, 0.2)
            with self.lock:
                self.jobs[end["state"] if end else "unfinished"] += 1

    def start(self):
        self.threads = [threading.Thread(target=self.student_loop, args=(t,), daemon=True) for t in self.students]
        self.threads.append(threading.Thread(target=self.teacher_loop, daemon=True))
        self.threads.append(threading.Thread(target=self.staff_loop, daemon=True))
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


class Sockets:
    """Websockets held open through a fault, each on its node, counting what
    they receive: every delivery each one hears (to find those missed or
    heard twice), when each announcement arrived, and the acknowledgments
    they sent over the socket that the server confirmed."""

    def __init__(self, clients):
        self.clients = clients  # (base, access token)
        self.closed = 0
        self.messages = Counter()
        self.heard = defaultdict(list)  # client index -> delivery ids, as heard
        self.arrivals = defaultdict(list)  # announcement id -> monotonic arrival times
        self.confirmed = set()  # delivery ids acknowledged over a websocket
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks = []

    async def hold(self, index, base, token):
        url = base.replace("http", "ws", 1) + "/ws"
        asked = set()
        try:
            async with websockets.connect(url, additional_headers={"authorization": f"Bearer {token}"},
                                          ping_interval=None, max_size=None) as socket:
                async for raw in socket:
                    message = json.loads(raw)
                    kind = message.get("type")
                    self.messages[kind] += 1
                    if kind == "delivery.created":
                        delivery = message["delivery"]
                        self.heard[index].append(delivery["id"])
                        self.arrivals[delivery["announcement"]["id"]].append(time.monotonic())
                        # Every third one is acknowledged over the socket.
                        if delivery["id"] % 3 == 0 and delivery["state"] != "acknowledged":
                            asked.add(delivery["id"])
                            await socket.send(json.dumps({"type": "ack", "delivery_id": delivery["id"]}))
                    elif kind == "delivery.updated" and message["state"] == "acknowledged" \
                            and message["delivery_id"] in asked:
                        self.confirmed.add(message["delivery_id"])
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - any end counts as closed
            pass
        self.closed += 1

    def start(self):
        self.thread.start()
        self.tasks = [asyncio.run_coroutine_threadsafe(self.hold(i, base, t), self.loop)
                      for i, (base, t) in enumerate(self.clients)]

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
    out = subprocess.run(psql + ["-qtAc", statement], capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Node:
    """`classbell serve`, started from this process so it can be killed."""

    def __init__(self, binary, base, log, env=None):
        self.binary, self.base, self.log = binary, base, log
        self.env = dict(os.environ, **(env or {}))
        self.process = None

    def start(self):
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([self.binary, "serve"], stdout=log, stderr=log, env=self.env)
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
    """A multipart POST of text `fields` then a file: (status, parsed body, headers)."""
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
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, None, error.headers
    except OSError:
        return 0, None, {}


def multipart(base, path, token, filename, content):
    status, body, _ = form_post(base, path, token, [], filename, content, "text/csv")
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


def stalled_client(host, port, access_token):
    """A websocket that completes its upgrade and then never reads again
    (with a small receive buffer, so it fills after a few messages)."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    client.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                    f"Authorization: Bearer {access_token}\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = client.recv(1)  # a byte at a time: no frame is read past the head
        if not byte:
            break
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the upgrade was refused: {head[:40]!r}")
    return client


def latencies_of(sockets, published):
    """Publish → receipt latencies (s) at the reading websockets, for the
    announcements in `published` ({id: monotonic time of the POST})."""
    found = []
    for announcement, sent in published.items():
        found += [arrived - sent for arrived in sockets.arrivals.get(announcement, [])]
    return sorted(found)


def percentile(values, share):
    return values[min(len(values) - 1, int(len(values) * share))] if values else float("nan")


def slow_clients(args, traffic, sockets, psql, readers, problems):
    """1,000 websockets that stop reading, while the eight reading ones are
    sent the same announcements: the stalled ones are closed by the server
    and the readers' publish → receipt p99 holds."""
    manager = token(args.base, "manager")
    course = http(args.base, "POST", "/api/courses", manager, {"code": "SLOW-DRILL", "title": "Slow drill"})[2]
    teacher = sql(psql, "SELECT id FROM users WHERE username = 'ms.rivera'")
    tokens = minted_tokens(psql, args.jwt_secret, args.slow_clients)
    # Two sections of up to 1,000 (the most one may hold): the stalled
    # students and the readers, split between them; the course is the audience.
    for half, (low, high) in enumerate([(0, args.slow_clients // 2), (args.slow_clients // 2, args.slow_clients)]):
        section = sql(psql, "INSERT INTO sections (course_id, section_code, term, teacher_id, capacity, status) "
                            f"VALUES ({course['id']}, 'S{half + 1}', 'Drill', {teacher}, 1000, 'published') "
                            "RETURNING id").split()[0]
        ours = readers[half * len(readers) // 2:(half + 1) * len(readers) // 2]
        sql(psql, f"INSERT INTO enrollments (section_id, student_id) SELECT {section}, id FROM users "
                  f"WHERE username IN ({','.join(repr(r) for r in ours)}) OR id IN (SELECT id FROM users "
                  f"WHERE username LIKE 'drill%' ORDER BY id OFFSET {low} LIMIT {high - low})")
    body = "Read this carefully. " * 900  # about 19 KB: a few fill a stalled client's buffers

    def publish(count):
        published = {}
        for n in range(count):
            sent = time.monotonic()
            status, _, answer, _ = http(args.base, "POST", "/api/announcements", manager, {
                "title": f"Slow drill {n}", "body": body, "audience": {"kind": "course", "course_id": course["id"]}})
            if status != 201:
                problems.append(f"slow clients: a publish answered {status}")
                continue
            published[answer["id"]] = sent
            time.sleep(0.25)
        time.sleep(2)
        return latencies_of(sockets, published)

    def gauge(name):
        text = urllib.request.urlopen(args.base + "/metrics", timeout=10).read().decode()
        return sum(metric(text, name))

    # The school-wide work pauses while latency is compared, so both windows
    # see the same steady load (the teacher's section publishes go on).
    traffic.quiet.set()
    wait_for(lambda: not traffic.staff_busy.is_set(), 90, 0.2)
    before = publish(10)
    open_before = gauge("classbell_ws_sessions_open")
    closes_before = gauge("classbell_ws_slow_consumer_closes_total")
    host, port = urllib.parse.urlparse(args.base).hostname, urllib.parse.urlparse(args.base).port
    started = time.monotonic()
    stalled = [stalled_client(host, port, t) for t in tokens]
    opened = time.monotonic() - started
    during = publish(args.slow_publishes)
    closed_at = wait_for(lambda: gauge("classbell_ws_sessions_open") <= open_before, args.stall_timeout + 30, 0.5)
    closes = gauge("classbell_ws_slow_consumer_closes_total") - closes_before
    traffic.quiet.clear()
    for client in stalled:
        client.close()
    p99_before, p99_during = percentile(before, 0.99), percentile(during, 0.99)
    print(f"slow clients: {len(stalled)} stalled websockets (opened in {opened:.1f} s), "
          f"{closes:.0f} closed as slow consumers, all gone {'never' if closed_at is None else 'in time'}; "
          f"readers' p99 {p99_before * 1000:.0f} ms before, {p99_during * 1000:.0f} ms with them "
          f"({len(during)} receipts)", flush=True)
    if closes < len(stalled) or closed_at is None:
        problems.append(f"slow clients: {closes:.0f} of {len(stalled)} closed as slow consumers")
    # Beside them the server still encodes and pushes every message to the
    # stalled sessions until they are closed: "holds" is within 2× or 0.5 s.
    if not during or p99_during > max(2 * p99_before, p99_before + 0.5):
        problems.append(f"slow clients: readers' p99 went from {p99_before * 1000:.0f} to "
                        f"{p99_during * 1000:.0f} ms")


def heard_once(sockets, users, psql, since_delivery, problems):
    """Every delivery each websocket's user got while it was open was heard
    once: none missed (across nodes, after the Redis outage), none twice.
    Pushes follow their fan-out's commits, so a last school-wide publish is
    given up to 30 s to arrive."""
    expected = {index: set(int(x) for x in sql(psql, f"SELECT id FROM deliveries WHERE user_id = {user} "
                                                     f"AND id > {since_delivery}").split())
                for index, user in enumerate(users)}
    missed = lambda: {d for index, due in expected.items() for d in due - set(sockets.heard[index])}
    wait_for(lambda: not missed(), 30, 0.5)
    lost = missed()
    duplicated = sum(len(heard) - len(set(heard)) for heard in sockets.heard.values())
    total = sum(len(due) for due in expected.values())
    detail = ""
    if lost:
        announcements = sql(psql, "SELECT DISTINCT announcement_id FROM deliveries WHERE id IN "
                                  f"({','.join(str(d) for d in lost)})").split()
        detail = f" (of announcements {', '.join(announcements)})"
    print(f"websocket deliveries on two nodes: {total} due, {len(lost)} missed{detail}, "
          f"{duplicated} heard twice", flush=True)
    if lost or duplicated:
        problems.append(f"websockets: {len(lost)} deliveries missed, {duplicated} heard twice")


def bucket_keys(args):
    """Every key in the S3 bucket (ListObjectsV2, signed with SigV4)."""
    endpoint = urllib.parse.urlparse(args.s3_endpoint)
    keys, continuation = [], None
    while True:
        query = {"list-type": "2"}
        if continuation:
            query["continuation-token"] = continuation
        quoted = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                          for k, v in sorted(query.items()))
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        empty = hashlib.sha256(b"").hexdigest()
        headers = f"host:{endpoint.netloc}\nx-amz-content-sha256:{empty}\nx-amz-date:{stamp}\n"
        signed = "host;x-amz-content-sha256;x-amz-date"
        canonical = "\n".join(["GET", f"/{args.s3_bucket}", quoted, headers, signed, empty])
        scope = f"{day}/us-east-1/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + args.s3_secret_key).encode()
        for part in (day, "us-east-1", "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        request = urllib.request.Request(f"{args.s3_endpoint}/{args.s3_bucket}?{quoted}", headers={
            "x-amz-date": stamp, "x-amz-content-sha256": empty,
            "authorization": f"AWS4-HMAC-SHA256 Credential={args.s3_access_key}/{scope}, "
                             f"SignedHeaders={signed}, Signature={signature}"})
        root = ElementTree.fromstring(urllib.request.urlopen(request, timeout=30).read())
        local = lambda element: element.tag.rsplit("}", 1)[-1]
        truncated = False
        for element in root:
            if local(element) == "Contents":
                keys += [child.text for child in element if local(child) == "Key"]
            elif local(element) == "IsTruncated":
                truncated = element.text == "true"
            elif local(element) == "NextContinuationToken":
                continuation = element.text
        if not truncated:
            return keys


def objects_owned(args, psql, problems):
    """After everything (crashes, outages, expiries), the bucket holds
    exactly the objects rows own: the sweeper removed what was left behind."""
    drained = wait_for(lambda: sql(psql, "SELECT count(*) FROM object_deletions") == "0", 60, 0.5)
    owned = set(sql(psql, "SELECT object_key FROM stored_objects").split())
    stored = set(bucket_keys(args))
    orphans, missing = stored - owned, owned - stored
    print(f"object storage after recovery: {len(stored)} objects, {len(owned)} owned by rows, "
          f"{len(orphans)} orphaned, {len(missing)} missing, deletion queue "
          f"{'empty' if drained else 'not drained'}", flush=True)
    if orphans or missing or not drained:
        problems.append(f"storage: {len(orphans)} orphaned objects, {len(missing)} missing, "
                        f"queue drained {bool(drained)}")


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
        # A minute's p99 swings with how many school-wide rounds fell in it:
        # the median of the last three minutes against that of minutes 2–4.
        early = sorted(row[1] for row in rows[1:4])[len(rows[1:4]) // 2]
        late = sorted(row[1] for row in rows[-3:])[len(rows[-3:]) // 2]
        if late > max(early * 1.5, early + 0.02):
            problems.append(f"soak: p99 went from {early * 1000:.0f} to {late * 1000:.0f} ms")
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
    parser.add_argument("--base", required=True, help="node A")
    parser.add_argument("--base-b", required=True, help="node B (its own port)")
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
    parser.add_argument("--s3-stop", required=True)
    parser.add_argument("--s3-start", required=True)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--s3-bucket", required=True)
    parser.add_argument("--s3-access-key", required=True)
    parser.add_argument("--s3-secret-key", required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--students", type=int, default=5000)
    parser.add_argument("--slow-clients", type=int, default=1000)
    parser.add_argument("--slow-publishes", type=int, default=40)
    parser.add_argument("--stall-timeout", type=float, default=10)
    parser.add_argument("--soak", type=int, default=0, help="minutes of steady traffic only")
    parser.add_argument("--staff-every", type=float, default=15, help="seconds between the staff's rounds")
    parser.add_argument("--import-rows", type=int, default=5000)
    args = parser.parse_args()
    psql = args.psql.split()
    problems = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sql(psql, "INSERT INTO users (username, display_name, email, password_hash, role) "
              f"SELECT 'drill' || g, 'Drill ' || g, 'drill' || g || '@school.example', 'x', 'student' "
              f"FROM generate_series(1, {args.students}) g")
    node = Node(args.bin, args.base, args.log)
    node.start()
    port_b = urllib.parse.urlparse(args.base_b).port
    node_b = Node(args.bin, args.base_b, args.log + ".b",
                  {"CLASSBELL_BIND": f"127.0.0.1:{port_b}", "CLASSBELL_PUBLIC_URL": args.base_b})
    node_b.start()

    readers = [f"student{n:02}" for n in range(1, 9)]
    students = [token(args.base, name) for name in readers]
    teacher = token(args.base, "ms.rivera")
    sections = http(args.base, "GET", "/api/me/sections?limit=1", teacher)[2]["items"]
    traffic = Traffic(args.base, students, teacher, sections[0]["id"])
    traffic.manager = token(args.base, "manager")
    traffic.staff_every = args.staff_every
    # Half the websockets on each node: what is published on A reaches B's
    # clients through Redis (or, after an outage, from their cursors).
    sockets = Sockets([(args.base if i < 4 else args.base_b, t) for i, t in enumerate(students)])
    sockets.start()
    # A socket opened without a cursor hears what comes after its hello.
    if not wait_for(lambda: sockets.messages["hello"] == len(students), 30):
        sys.exit("faults: the websockets did not open")
    since_delivery = int(sql(psql, "SELECT coalesce(max(id), 0) FROM deliveries"))
    traffic.start()
    time.sleep(3)
    if args.soak:
        traffic.reset()
        soak(node, traffic, args, psql, problems)
        traffic.finish()
        time.sleep(3)
        heard_once(sockets, [user_of(t) for t in students], psql, since_delivery, problems)
        sockets.stop()
        acks_kept(traffic, sockets, psql, problems)
        node.stop()
        node_b.stop()
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
    time.sleep(1)
    # The throttle lives in Redis and fails closed: a sign-in is refused
    # (503, Retry-After) rather than let password guessing run uncounted.
    signin = http(args.base, "POST", "/auth/login", body={"username": "student01", "password": PASSWORD})
    time.sleep(max(args.redis_down - 1, 0))
    during = dict(traffic.statuses)
    published = traffic.published - published_before
    pushed = sockets.messages["delivery.created"] - pushed_before
    run(args.redis_start)
    time.sleep(3)
    signin_after = http(args.base, "POST", "/auth/login", body={"username": "student01", "password": PASSWORD})
    failed = {s: n for s, n in during.items() if not 200 <= s < 300}
    print(f"redis down {args.redis_down:.0f} s: requests {dict(sorted(during.items()))}, "
          f"published {published}, pushed live {pushed}, "
          f"websockets closed {sockets.closed}/{len(students)}; a sign-in answered {signin[0]} "
          f"(Retry-After {signin[1].get('retry-after')}), {signin_after[0]} after", flush=True)
    if pushed == 0:
        problems.append("redis: no live push on this node while Redis was down")
    if failed:
        problems.append(f"redis: requests that need no Redis failed: {failed}")
    if published == 0:
        problems.append("redis: nothing was published while Redis was down")
    if signin[0] != 503 or not signin[1].get("retry-after") or signin_after[0] != 200:
        problems.append(f"redis: sign-in answered {signin[0]} while down, {signin_after[0]} after")

    slow_clients(args, traffic, sockets, psql, readers, problems)

    traffic.finish()
    time.sleep(3)
    heard_once(sockets, [user_of(t) for t in students], psql, since_delivery, problems)
    sockets.stop()
    acks_kept(traffic, sockets, psql, problems)
    node_b.stop()

    announcement, manager = killed_mid_work(node, args, psql, problems)
    relay_down(args, announcement, manager, problems)
    storage_down(args, psql, problems)
    objects_owned(args, psql, problems)
    node.stop()

    for problem in problems:
        print(f"FAULT: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


def acks_kept(traffic, sockets, psql, problems):
    """Every acknowledgment the server confirmed is in the database."""
    acked = set(traffic.acked) | set(sockets.confirmed)
    stored = acked_in_database(psql, acked)
    print(f"acknowledgments: {len(traffic.acked)} over HTTP and {len(sockets.confirmed)} over websockets "
          f"confirmed, {stored} in the database, {len(acked) - stored} lost; sign-ins {dict(traffic.signins)}, "
          f"jobs {dict(traffic.jobs)}; live messages {dict(sockets.messages)}", flush=True)
    if stored != len(acked):
        problems.append(f"{len(acked) - stored} confirmed acknowledgments are not in the database")
    if traffic.jobs.get("FAILURE") or traffic.jobs.get("unfinished"):
        problems.append(f"jobs under traffic: {dict(traffic.jobs)}")


if __name__ == "__main__":
    main()
