#!/usr/bin/env python3
"""Maelstrom lin-kv node: one copy of the data, held by the first node.

The first node of sorted(node_ids) keeps every key in a dict and answers
read / write / cas itself.  Any other node forwards the client's request to
that node as an RPC of the same type (with its own msg_id), waits for the
answer and relays it to the client.  If no answer comes within 1 s the
client gets error 0 (timeout, indefinite: the operation may still happen).

The network between nodes may also duplicate messages.  A forward carries
the follower's `boot`, a random id drawn at start-up, so (node, boot,
msg_id) names it even across restarts of the follower.  The first node
keeps its reply to every forward (all of them: runs are short) and answers
a copy with that same reply, without applying it again.  Replies to
forwards echo `boot`; a follower relays the first reply to each forward
and drops later copies, and replies meant for an earlier run of itself.

Only one node holds state, so this is linearizable under partitions,
pauses and duplication, but not under a kill of the first node (its
memory is lost).
Python 3, standard library only.  Messages on stdout, logs on stderr.
"""
import json
import os
import queue
import sys
import threading
import time

FORWARD_TIMEOUT = 1.0  # seconds a follower waits for the first node
FIELDS = {"read": ["key"], "write": ["key", "value"], "cas": ["key", "from", "to"]}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def error(code, text):
    return {"type": "error", "code": code, "text": text}


class Node:
    def __init__(self):
        self.node_id, self.node_ids = None, []
        self.next_msg_id = 0
        self.boot = os.urandom(8).hex()  # tells this run's forwards from earlier runs'
        self.kv = {}
        self.pending = {}  # our msg_id -> (client, client msg_id, deadline)
        self.answered = {}  # (node, its boot, its msg_id) -> our reply to that forward

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
        if "boot" in req["body"]:  # a forward: echo the forwarding node's boot
            body["boot"] = req["body"]["boot"]
        self.send(req["src"], body, src=req.get("dest"))

    def leader(self):
        return sorted(self.node_ids)[0]

    def handle(self, req):
        body = req["body"]
        if "in_reply_to" in body:  # an answer to one of our forwards
            self.relay(body)
        elif not is_int(body.get("msg_id")):  # a request we could not answer
            log("request without msg_id dropped:", body)
        else:
            key = (req["src"], body.get("boot"), body["msg_id"])
            if "boot" not in body:  # from a client
                answer = self.answer(req)
            elif key in self.answered:  # a copy of a forward: same reply, not applied again
                answer = self.answered[key]
            else:  # the first copy of a forward from another node
                answer = self.answered[key] = self.answer(req)
            if answer is not None:  # None: we forwarded it ourselves
                self.reply(req, answer)

    def answer(self, req):
        """Serve one request; return the reply body, or None if forwarded."""
        body, kind = req["body"], req["body"]["type"]
        if kind == "init":
            ids = body.get("node_ids")
            if not isinstance(body.get("node_id"), str) or not isinstance(ids, list) or not ids:
                return error(12, "init needs node_id and node_ids")
            self.node_id, self.node_ids = body["node_id"], [str(n) for n in ids]
            log("init", self.node_id, self.node_ids, "leader", self.leader())
            return {"type": "init_ok"}
        if kind not in FIELDS:
            return error(10, "unsupported message type %r" % kind)
        if self.node_id is None:
            return error(11, "node not initialised yet")
        if not all(is_int(body.get(f)) for f in FIELDS[kind]):
            return error(12, "%s needs integer %s" % (kind, ", ".join(FIELDS[kind])))
        if self.node_id == self.leader():
            return self.apply(body)
        fwd = self.send(self.leader(), dict(body, boot=self.boot))
        self.pending[fwd] = (req["src"], body["msg_id"], time.monotonic() + FORWARD_TIMEOUT)
        return None

    def apply(self, body):
        """Run one read/write/cas against the dict; return the reply body."""
        kind, key = body["type"], body["key"]
        if kind == "write":
            self.kv[key] = body["value"]
            return {"type": "write_ok"}
        if key not in self.kv:
            return error(20, "key %d does not exist" % key)
        if kind == "read":
            return {"type": "read_ok", "value": self.kv[key]}
        if self.kv[key] != body["from"]:
            return error(22, "expected %d, found %d" % (body["from"], self.kv[key]))
        self.kv[key] = body["to"]
        return {"type": "cas_ok"}

    def relay(self, body):
        """Pass the first node's answer back to the client that asked, once."""
        entry = None
        if body.get("boot") == self.boot:  # else meant for an earlier run of this node
            entry = self.pending.pop(body["in_reply_to"], None)
        if entry is None:
            return log("late, repeated or unknown reply dropped:", body)
        client, client_msg_id, _ = entry  # send() puts our own msg_id on it
        answer = {k: v for k, v in body.items() if k != "boot"}
        self.send(client, dict(answer, in_reply_to=client_msg_id))

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
                    node.reply(msg, error(13, "internal error: %r" % e))  # 13 = crash
        node.expire()


if __name__ == "__main__":
    main()
