#!/usr/bin/env python3
"""Checks twosell's contract (DESIGN.md, README "The contract") from the
outside, with nothing but what kcat produced and consumed.

  contract.py gen RUN_ID N EVENTS_FILE      write key|value lines for kcat -P -K '|'
  contract.py check RUN_ID N INPUT_TOPIC OUTPUT.jsonl DLQ.jsonl [--partial]

check reads `kcat -C -J` lines. With --partial it only reports whether every
event of the run has arrived (exit 0) or not yet (exit 3). The expected
statuses follow the juhe simulator's documented rule, computed here
independently of the Go code.
"""
import datetime as dt
import json
import re
import sys

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
EPOCH = dt.date(2015, 1, 1)
PREFIXES = ["130", "138", "150", "173", "188", "199"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INPUT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{INPUT_SPAN}-01"
ORIGIN = "kcat-interop"


def events(run_id, n):
    """The run's events: (event_id, key, value, expectation)."""
    out = []
    for i in range(n):
        eid = f"{run_id}-{i}"
        key = f"u-{i % 7}"
        mobile = "%s%04d%02d%02d" % (PREFIXES[i % len(PREFIXES)], (i * 7919) % 10000, i % 100, (i * 37) % 100)
        day = dt.date(2015 + i % 11, 1 + i % 12, 1 + i % 28)
        kind = i % 10
        if kind == 7:  # a bad number
            value = json.dumps({"event_id": eid, "mobile": "12345", "registered_at": day.isoformat()})
            out.append((eid, key, value, {"dlq": "invalid_mobile"}))
            continue
        if kind == 8:  # no date
            value = json.dumps({"event_id": eid, "mobile": mobile})
            out.append((eid, key, value, {"dlq": "missing_field"}))
            continue
        if kind == 9:  # not JSON at all
            value = '{"event_id": "%s", "mobile": "%s", ' % (eid, mobile)
            out.append((eid, key, value, {"dlq": "invalid_json"}))
            continue
        if kind in (0, 1):  # late evening UTC: the next calendar day in Shanghai
            at = dt.datetime(day.year, day.month, day.day, 17, 30, tzinfo=dt.timezone.utc)
            registered, query_day = f'"{at.strftime("%Y-%m-%dT%H:%M:%SZ")}"', (at.astimezone(SHANGHAI)).date()
        elif kind == 2:
            at = dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=SHANGHAI)
            registered, query_day = str(int(at.timestamp() * 1000)), day
        else:
            registered, query_day = f'"{day.isoformat()}"', day
        shown = f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}" if kind == 3 else mobile
        # Built by hand so that the big number and the spacing are what a
        # producer wrote: the output must carry them byte for byte.
        value = ('{"event_id": "%s", "mobile": "%s", "registered_at": %s, '
                 '"referrer_id": 9007199254740993123, "note": "caf\\u00e9"}') % (eid, shown, registered)
        out.append((eid, key, value, {"status": expect(mobile, query_day), "date": query_day.strftime("%Y%m%d")}))
    return out


def expect(mobile, day):
    """The simulator's rule (juhe/juhesim, README "The simulator")."""
    xy = int(mobile[-2:])
    if xy < 5:
        return "no_record"
    if xy < 10:
        return "no_activation_date"
    activation = EPOCH + dt.timedelta(days=int(mobile[3:7]) % 3650)
    return "recycled" if activation > day else "not_recycled"


def headers(rec):
    h = rec.get("headers") or []
    return {h[i]: h[i + 1] for i in range(0, len(h), 2)}


def load(path, run_id):
    recs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if f'"{run_id}-' in (rec.get("payload") or ""):
                recs.append(rec)
    return recs


def event_id(payload, run_id):
    m = re.search(r'"event_id": ?"(%s-\d+)"' % re.escape(run_id), payload)
    return m.group(1) if m else None


def check(run_id, n, input_topic, out_path, dlq_path, partial):
    evs = {eid: (key, value, exp) for eid, key, value, exp in events(run_id, n)}
    outs, dlqs = load(out_path, run_id), load(dlq_path, run_id)
    seen = {}
    for rec in outs + dlqs:
        seen.setdefault(event_id(rec["payload"], run_id), []).append(rec)
    if partial:
        missing = [eid for eid in evs if eid not in seen]
        print(f"{n - len(missing)}/{n} events arrived")
        return 0 if not missing else 3

    problems = []
    def bad(eid, msg):
        problems.append(f"{eid}: {msg}")

    for eid, (key, value, exp) in evs.items():
        recs = seen.get(eid, [])
        if len(recs) != 1:
            bad(eid, f"arrived {len(recs)} times, want exactly once")
            continue
        rec = recs[0]
        h = headers(rec)
        if rec.get("key") != key:
            bad(eid, f"key {rec.get('key')!r}, want the input's {key!r}")
        if h.get("origin") != ORIGIN:
            bad(eid, f"input header origin lost: {h}")
        tp = h.get("traceparent", "")
        parts = tp.split("-")
        if len(parts) != 4 or parts[1] != TRACE_ID or parts[2] == INPUT_SPAN:
            bad(eid, f"traceparent {tp!r}: want the input's trace {TRACE_ID} with a span of its own")
        if "dlq" in exp:
            if rec in outs:
                bad(eid, "an invalid event was enriched")
                continue
            if rec["payload"] != value:
                bad(eid, "dead letter value differs from the input")
            if h.get("twosell-error-class") != exp["dlq"]:
                bad(eid, f"twosell-error-class {h.get('twosell-error-class')!r}, want {exp['dlq']!r}")
            if not h.get("twosell-error"):
                bad(eid, "no twosell-error reason")
            if not re.fullmatch(r"%s/\d+/\d+" % re.escape(input_topic), h.get("twosell-source", "")):
                bad(eid, f"twosell-source {h.get('twosell-source')!r}")
            continue
        if rec in dlqs:
            bad(eid, f"a valid event was dead-lettered: {h.get('twosell-error')}")
            continue
        payload = rec["payload"]
        if not payload.startswith(value.rstrip()[:-1]):
            bad(eid, "the input's bytes are not kept as they were")
        try:
            ts = json.loads(payload)["twosell"]
        except (ValueError, KeyError) as e:
            bad(eid, f"no twosell object: {e}")
            continue
        if ts.get("schema") != 1 or ts.get("status") != exp["status"] or ts.get("date") != exp["date"]:
            bad(eid, f"twosell {ts}, want status {exp['status']} date {exp['date']}")
        if h.get("twosell-status") != ts.get("status"):
            bad(eid, f"twosell-status header {h.get('twosell-status')!r}, field {ts.get('status')!r}")
        # "cache" when an earlier run already paid for what answers it
        # (the ledger is shared): the contract's two sources.
        if ts.get("source") not in ("api", "cache") or not ts.get("mode") or not ts.get("checked_at"):
            bad(eid, f"twosell {ts}: source, mode or checked_at missing or unknown")
        has_res = exp["status"] != "no_record"
        if has_res != ("res" in ts) or has_res != bool(re.fullmatch(r"JH\d{21}", ts.get("order_id", ""))):
            bad(eid, f"twosell {ts}: res and order_id must be present exactly when answered")
    for p in problems[:40]:
        print("FAIL", p)
    bad_count, dlq_count = len(problems), sum(1 for e in evs.values() if "dlq" in e[2])
    print(f"{n} events: {n - dlq_count} enriched and {dlq_count} dead letters expected; {bad_count} problems")
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 4 and argv[0] == "gen":
        with open(argv[3], "w", encoding="utf-8") as f:
            for _, key, value, _ in events(argv[1], int(argv[2])):
                f.write(f"{key}|{value}\n")
        return 0
    if len(argv) >= 6 and argv[0] == "check":
        return check(argv[1], int(argv[2]), argv[3], argv[4], argv[5], "--partial" in argv)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
