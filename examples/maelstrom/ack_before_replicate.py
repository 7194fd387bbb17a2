#!/usr/bin/env python3
"""Maelstrom lin-kv node that is NOT linearizable: leader acks, then copies.

The leader is the first node of sorted(node_ids).  Followers forward write
and cas to the leader (same message type, their own msg_id) and relay its
answer to the client, or answer error 0 (timeout, indefinite) after 1 s.
The leader applies the write or cas, acknowledges it FIRST, and only then
sends a one-way `replicate` (key, value) to each follower: no ack, no retry,
no sequence number.  Every node serves reads from its own copy.  So a read on
a follower can miss an acknowledged write (stale read) while the `replicate`
is delayed, and forever if it is lost or overtaken by a later one.
Python 3, standard library only.  Messages on stdout, logs on stderr.
"""
import json
import queue
import sys
import threading
import time

FORWARD_TIMEOUT = 1.0  # seconds a follower waits for the leader
FIELDS = {"read": ["key"], "write": ["key", "value"], "cas": ["key", "from", "to"]}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class Node:
    def __init__(self):
        self.node_id, self.node_ids = None, []
        self.next_msg_id = 0
        self.kv = {}
        self.pending = {}  # our msg_id -> (client, client msg_id, deadline)

    def send(self, dest, body, src=None):
        """Write one message to stdout; `src` is only used before init."""
        self.next_msg_id += 1
        msg = {"src": self.node_id or src, "dest": dest,
               "body": dict(body, msg_id=self.next_msg_id)}
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()
        return self.next_msg_id

    def reply(self, req, body):
        body = dict(body, in_reply_to=req["body"]["msg_id"])
        self.send(req["src"], body, src=req.get("dest"))

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def leader(self):
        return sorted(self.node_ids)[0]

    def handle(self, req):
        body, kind = req["body"], req["body"]["type"]
        if "in_reply_to" in body:  # the leader's answer to one of our forwards
            self.relay(body)
        elif kind == "replicate":  # the leader's copy of a change; one-way, never answered
            if is_int(body.get("key")) and is_int(body.get("value")):
                self.kv[body["key"]] = body["value"]
            else:
                log("bad replicate dropped:", body)
        elif not is_int(body.get("msg_id")):  # a request we could not answer
            log("request without msg_id dropped:", body)
        elif kind == "init":
            ids = body.get("node_ids")
            if not isinstance(body.get("node_id"), str) or not isinstance(ids, list) or not ids:
                return self.error(req, 12, "init needs node_id and node_ids")
            self.node_id, self.node_ids = body["node_id"], [str(n) for n in ids]
            log("init", self.node_id, self.node_ids, "leader", self.leader())
            self.reply(req, {"type": "init_ok"})
        elif kind not in FIELDS:
            self.error(req, 10, "unsupported message type %r" % kind)
        elif self.node_id is None:
            self.error(req, 11, "node not initialised yet")
        elif not all(is_int(body.get(f)) for f in FIELDS[kind]):
            self.error(req, 12, "%s needs integer %s" % (kind, ", ".join(FIELDS[kind])))
        elif kind == "read" or self.node_id == self.leader():
            self.serve(req, kind, body)
        else:
            fwd = self.send(self.leader(), body)
            self.pending[fwd] = (req["src"], body["msg_id"], time.monotonic() + FORWARD_TIMEOUT)

    def serve(self, req, kind, body):
        """Read from the local copy, or (leader) apply, ack, then replicate."""
        key = body["key"]
        if kind == "write":
            self.kv[key] = body["value"]
            self.reply(req, {"type": "write_ok"})
            self.replicate(key, body["value"])
        elif key not in self.kv:
            self.error(req, 20, "key %d does not exist" % key)
        elif kind == "read":
            self.reply(req, {"type": "read_ok", "value": self.kv[key]})
        elif self.kv[key] != body["from"]:
            self.error(req, 22, "expected %d, found %d" % (body["from"], self.kv[key]))
        else:
            self.kv[key] = body["to"]
            self.reply(req, {"type": "cas_ok"})
            self.replicate(key, body["to"])

    def replicate(self, key, value):
        for other in self.node_ids:
            if other != self.node_id:
                self.send(other, {"type": "replicate", "key": key, "value": value})

    def relay(self, body):
        """Pass the leader's answer back to the client that asked."""
        entry = self.pending.pop(body["in_reply_to"], None)
        if entry is None:
            return log("late or unknown reply dropped:", body)
        client, client_msg_id, _ = entry  # send() puts our own msg_id on it
        self.send(client, dict(body, in_reply_to=client_msg_id))

    def expire(self):
        """Answer error 0 (timeout, indefinite) for forwards older than 1 s."""
        for fwd, (client, client_msg_id, deadline) in list(self.pending.items()):
            if deadline <= time.monotonic():
                del self.pending[fwd]
                self.send(client, {"type": "error", "code": 0, "in_reply_to": client_msg_id,
                                   "text": "no answer from %s within 1 s" % self.leader()})


def parse(line):
    """Return the message, or None if it is not a usable Maelstrom message."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    ok = (isinstance(msg, dict) and isinstance(msg.get("src"), str)
          and isinstance(msg.get("body"), dict) and isinstance(msg["body"].get("type"), str))
    return msg if ok else None


def main():
    inbox = queue.Queue()

    def read_stdin():  # a thread, so the main loop can wake up for timeouts
        for line in sys.stdin.buffer:
            inbox.put(line)
        inbox.put(None)
    threading.Thread(target=read_stdin, daemon=True).start()

    node, eof = Node(), False
    while not (eof and not node.pending):  # at EOF, let open forwards time out
        deadline = min((d for _, _, d in node.pending.values()), default=None)
        try:
            line = inbox.get(timeout=None if deadline is None
                             else max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            line = b""
        if line is None:
            eof = True
        elif line.strip():
            msg = parse(line)
            if msg is None:
                log("ignoring malformed line:", line[:200])
                continue
            try:
                node.handle(msg)
            except Exception as e:  # never die on a body we do not understand
                log("error handling", msg, repr(e))
                body = msg["body"]
                if "in_reply_to" not in body and is_int(body.get("msg_id")):
                    node.error(msg, 13, "internal error: %r" % e)  # 13 = crash
        node.expire()


if __name__ == "__main__":
    main()
